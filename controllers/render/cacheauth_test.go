package render

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/internal/localservers"
)

// The rendered redis.conf, with the ACL file the credentials Secret carries, runs in a real
// redis-server: nothing gets in without the generated password, the apps' client gets in with it,
// and the file holds the password's hash, not the password.
func TestTheCacheAdmitsOnlyTheGeneratedPassword(t *testing.T) {
	sp := sample(t)
	password := []byte("a-generated-password-for-this-test")
	secret := DatabaseSecret(sp, map[string][]byte{SecretKeyCache: password})
	acl := secret.Data[SecretKeyCacheACL]
	if len(acl) == 0 || strings.Contains(string(acl), string(password)) {
		t.Fatalf("the ACL file is %q", acl)
	}
	dir := t.TempDir()
	conf := CacheConfig(sp).Data["redis.conf"]
	if !strings.Contains(conf, "aclfile "+CacheACLMountPath+"/users.acl") {
		t.Fatalf("redis.conf does not read the ACL file:\n%s", conf)
	}
	for name, content := range map[string][]byte{"redis.conf": []byte(conf), "users.acl": acl} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := localservers.StartRedisConf(t, filepath.Join(dir, "redis.conf"), "--aclfile", filepath.Join(dir, "users.acl"))

	connect := func(pw string) error {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, Password: pw, DisableCache: true, DisableRetry: true})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
			return err
		}
		return c.Do(ctx, c.B().Get().Key("k").Build()).Error()
	}
	if err := connect(""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("without a password: %v, want NOAUTH", err)
	}
	if err := connect("wrong"); err == nil {
		t.Errorf("a wrong password was let in")
	}
	if err := connect(string(password)); err != nil {
		t.Errorf("with the generated password: %v", err)
	}
}
