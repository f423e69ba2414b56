package broker

import "math/rand/v2"

// modelSeeds is the seeds a randomised model test runs: the one given on
// the command line to reproduce a failure, else rounds fresh ones.
func modelSeeds(seed uint64, rounds int) []uint64 {
	if seed != 0 {
		return []uint64{seed}
	}
	seeds := make([]uint64, rounds)
	for i := range seeds {
		seeds[i] = rand.Uint64()
	}
	return seeds
}
