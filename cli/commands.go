package cli

// commands is the command tree, in the order help lists it.
func commands() *command {
	return &command{name: "kopernik", subs: []*command{
		topicsCommand(),
		groupsCommand(),
		subscriptionsCommand(),
		tenantsCommand(),
		namespacesCommand(),
		produceCommand(),
		consumeCommand(),
		peekCommand(),
		perfCommand(),
	}}
}
