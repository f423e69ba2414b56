package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestKafkaSCRAMAdminAPIs: DescribeUserScramCredentials and
// AlterUserScramCredentials (KIP-554) read and write the store SASL/SCRAM
// authenticates against, the one the admin REST resource writes, with
// kadm and with sarama's ClusterAdmin; only superusers may.
func TestKafkaSCRAMAdminAPIs(t *testing.T) {
	s := startAuthServer(t, map[string]string{"authorization-enabled": "true", "superuser-roles": "admin", "auth-failure-delay": "0s"})
	addr := s.Addr("kafka").String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	putSCRAM(t, s, "admin", "SCRAM-SHA-256", "admin-secret", "", "")
	putSCRAM(t, s, "carol", "SCRAM-SHA-256", "carol-secret", "", "")

	newAdm := func(user, pass string) *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	adm := newAdm("admin", "admin-secret")

	// kadm: describe what the admin REST wrote, add a user, who then logs in.
	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := described["admin"]; d.Err != nil || len(d.CredInfos) != 1 || d.CredInfos[0].Mechanism != kadm.ScramSha256 || d.CredInfos[0].Iterations != 4096 {
		t.Fatalf("described admin: %+v (all %+v)", d, described)
	}
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "bob-secret"}})
	if err != nil || altered["bob"].Err != nil {
		t.Fatalf("upsert bob: %v %+v", err, altered)
	}
	if err := kafkaPing(t, addr, scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism()); err != nil {
		t.Fatalf("bob logs in with the upserted credential: %v", err)
	}
	if _, body := adminREST(t, s, "admin", "GET", "/admin/v2/kopernik/scram", ""); !strings.Contains(body, "SCRAM-SHA-512:bob") {
		t.Fatalf("the admin REST does not see bob: %s", body)
	}
	described, err = adm.DescribeUserSCRAMs(ctx, "bob", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if d := described["bob"]; d.Err != nil || len(d.CredInfos) != 1 || d.CredInfos[0].Iterations != 8192 {
		t.Fatalf("described bob: %+v", d)
	}
	if d := described["nobody"]; !errors.Is(d.Err, kerr.ResourceNotFound) {
		t.Fatalf("described nobody: %+v", d)
	}
	// A salted password that is not a SHA-256 one is refused by the broker.
	altered, err = adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "weak", Mechanism: kadm.ScramSha256, Iterations: 4096,
		Salt: []byte("salt"), SaltedPassword: []byte("short")}})
	if err != nil || !errors.Is(altered["weak"].Err, kerr.UnacceptableCredential) {
		t.Fatalf("malformed salted password: %v %+v", err, altered)
	}
	altered, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "nobody", Mechanism: kadm.ScramSha256}}, nil)
	if err != nil || !errors.Is(altered["nobody"].Err, kerr.ResourceNotFound) {
		t.Fatalf("delete a missing credential: %v %+v", err, altered)
	}

	// Not a superuser: refused.
	if _, err := newAdm("carol", "carol-secret").DescribeUserSCRAMs(ctx); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("carol describes: %v", err)
	}

	// sarama: the same store, as the superuser (SASL/PLAIN with a token).
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	cfg.Net.SASL.User = "public/default"
	cfg.Net.SASL.Password = "token:" + testToken(t, testSecret, jwt.MapClaims{"sub": "admin"})
	sadm, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()
	res, err := sadm.DescribeUserScramCredentials([]string{"bob"})
	if err != nil || len(res) != 1 || res[0].ErrorCode != sarama.ErrNoError || len(res[0].CredentialInfos) != 1 ||
		res[0].CredentialInfos[0].Mechanism != sarama.SCRAM_MECHANISM_SHA_512 {
		t.Fatalf("sarama describe bob: %v %+v", err, res)
	}
	up, err := sadm.UpsertUserScramCredentials([]sarama.AlterUserScramCredentialsUpsert{
		{Name: "dave", Mechanism: sarama.SCRAM_MECHANISM_SHA_256, Iterations: 4096, Salt: []byte("dave-salt"), Password: []byte("dave-secret")}})
	if err != nil || len(up) != 1 || up[0].ErrorCode != sarama.ErrNoError {
		t.Fatalf("sarama upsert dave: %v %+v", err, *up[0])
	}
	if err := kafkaPing(t, addr, scram.Auth{User: "dave", Pass: "dave-secret"}.AsSha256Mechanism()); err != nil {
		t.Fatalf("dave logs in: %v", err)
	}
	del, err := sadm.DeleteUserScramCredentials([]sarama.AlterUserScramCredentialsDelete{{Name: "bob", Mechanism: sarama.SCRAM_MECHANISM_SHA_512}})
	if err != nil || len(del) != 1 || del[0].ErrorCode != sarama.ErrNoError {
		t.Fatalf("sarama delete bob: %v %+v", err, del)
	}
	if err := kafkaPing(t, addr, scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism()); err == nil {
		t.Fatal("bob still logs in after his credential was deleted")
	}
}
