package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/tests/framework"
)

// jwtKeys writes a fresh ECDSA P-256 key pair into a temporary folder
// and returns the paths of its PEM files.
func jwtKeys(t *testing.T) (priv, pub string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	for path, block := range map[string]*pem.Block{
		priv: {Type: "PRIVATE KEY", Bytes: der},
		pub:  {Type: "PUBLIC KEY", Bytes: pubDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return priv, pub
}

// rawMember is one member reached by plain gRPC, so a test chooses the
// token each call carries instead of a client that logs in again.
type rawMember struct {
	kv   pb.KVClient
	auth pb.AuthClient
	mt   pb.MaintenanceClient
}

func dialRaw(t *testing.T, m *framework.Member) rawMember {
	t.Helper()
	conn, err := grpc.NewClient(m.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rawMember{kv: pb.NewKVClient(conn), auth: pb.NewAuthClient(conn), mt: pb.NewMaintenanceClient(conn)}
}

func (r rawMember) login(ctx context.Context, t *testing.T, user, pw string) string {
	t.Helper()
	resp, err := r.auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: user, Password: pw})
	if err != nil {
		t.Fatalf("authenticate %s: %v", user, err)
	}
	// Signed without a raft round, the answer still says where it came
	// from, as etcd's (which goes through raft) does.
	if h := resp.Header; h == nil || h.ClusterId == 0 || h.MemberId == 0 || h.Revision == 0 || h.RaftTerm == 0 {
		t.Errorf("authenticate %s: header %v", user, h)
	}
	return resp.Token
}

// get reads key with token. A member may identify a call at an auth
// revision that an already committed change moves on before the read's
// barrier lets it through; it then answers "revision in header is old",
// and a client asks again. get does the same, with the same token, so
// what it returns is what the token is worth once the member is current.
func (r rawMember) get(ctx context.Context, token, key string) (string, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, token)
	for try := 0; ; try++ {
		resp, err := r.kv.Range(ctx, &pb.RangeRequest{Key: []byte(key)})
		if errors.Is(err, rpctypes.ErrGRPCAuthOldRevision) && try < 5 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return "", err
		}
		if len(resp.Kvs) != 1 {
			return "", errors.New("no key " + key)
		}
		return string(resp.Kvs[0].Value), nil
	}
}

// TestJWTAcrossMembers logs alice in at one member of a 3-member cluster
// with --auth-token jwt and uses her token, by plain gRPC, at every
// member, through auth changes. The same steps run on etcd v3.7.3, whose
// JWTs carry the auth revision: there every change of any user or role
// makes them stale (a client logs in again), where kvd's keep working
// until their own user changes.
func TestJWTAcrossMembers(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(t *testing.T, extra ...string) []*framework.Member
		// unrelated is what a token is worth after changes to other
		// users and roles; ended, after its user's password changes or
		// the user is deleted.
		unrelated, ended error
	}{
		{"kvd", func(t *testing.T, extra ...string) []*framework.Member {
			return framework.StartKvdCluster(t, 3, extra...)
		}, nil, rpctypes.ErrGRPCInvalidAuthToken},
		{"etcd", func(t *testing.T, extra ...string) []*framework.Member {
			return framework.StartCluster(t, framework.RequireBin(t, framework.EtcdBin()), 3, extra...)
		}, rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCAuthOldRevision},
	} {
		t.Run(srv.name, func(t *testing.T) {
			priv, pub := jwtKeys(t)
			ms := srv.start(t, "--auth-token", "jwt,pub-key="+pub+",priv-key="+priv+",sign-method=ES256,ttl=10m", "--bcrypt-cost", "4")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			root := setUpJWTAuth(ctx, t, ms[0].Endpoint, true)
			raw := make([]rawMember, len(ms))
			for i, m := range ms {
				raw[i] = dialRaw(t, m)
			}
			everywhere := func(what, token string, want error) {
				t.Helper()
				for i, r := range raw {
					v, err := r.get(ctx, token, "k")
					if !errors.Is(err, want) || (want == nil && v != "v") {
						t.Errorf("%s: member %d: get = %q, %v; want %v", what, i+1, v, err, want)
					}
				}
			}

			alice := raw[0].login(ctx, t, "alice", "alicepw")
			if parts := strings.Split(alice, "."); len(parts) != 3 {
				t.Fatalf("not a JWT: %q", alice)
			}
			everywhere("alice's token from member 1", alice, nil)

			for _, op := range []func() error{
				func() error { _, err := root.RoleAdd(ctx, "other"); return err },
				func() error {
					_, err := root.RoleGrantPermission(ctx, "other", "o", "p", clientv3.PermissionType(clientv3.PermRead))
					return err
				},
				func() error { _, err := root.UserAdd(ctx, "bob", "bobpw"); return err },
				func() error { _, err := root.UserGrantRole(ctx, "bob", "other"); return err },
				func() error { _, err := root.UserChangePassword(ctx, "bob", "bobpw2"); return err },
			} {
				if err := op(); err != nil {
					t.Fatal(err)
				}
			}
			everywhere("alice's token after changes to other users and roles", alice, srv.unrelated)

			if _, err := root.UserChangePassword(ctx, "alice", "alicepw2"); err != nil {
				t.Fatal(err)
			}
			everywhere("alice's token after her password changed", alice, srv.ended)
			if _, err := raw[1].auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"}); !errors.Is(err, rpctypes.ErrGRPCAuthFailed) {
				t.Errorf("the old password at member 2: %v", err)
			}
			alice = raw[1].login(ctx, t, "alice", "alicepw2")
			everywhere("alice's new token from member 2", alice, nil)

			// etcdctl logs in by itself (clientv3 with --user) at any
			// member and gets on with the token it was given.
			for _, m := range ms {
				out, errOut, code := framework.RunCLI(t, framework.RequireBin(t, framework.EtcdctlBin()), m.Endpoint,
					"--user", "alice:alicepw2", "get", "k", "--print-value-only")
				if code != 0 || strings.TrimSpace(out) != "v" {
					t.Errorf("etcdctl --user alice get k at %s: %q %q, exit %d", m.Name, out, errOut, code)
				}
			}

			// A token outlives a restart of the whole cluster: what it
			// is checked against (keys, users, the auth state) is all
			// on disk.
			framework.CrashCluster(ms, 0)
			everywhere("alice's token after the whole cluster restarted", alice, nil)

			// Turning auth off and on again ends tokens, simple or JWT.
			if _, err := root.AuthDisable(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := root.AuthEnable(ctx); err != nil {
				t.Fatal(err)
			}
			everywhere("alice's token after auth was disabled and enabled", alice, srv.ended)
			alice = raw[2].login(ctx, t, "alice", "alicepw2")
			everywhere("alice's token from member 3", alice, nil)

			if _, err := root.UserDelete(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			everywhere("alice's token after she was deleted", alice, srv.ended)
			if _, err := raw[2].auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: "alice", Password: "alicepw2"}); !errors.Is(err, rpctypes.ErrGRPCAuthFailed) {
				t.Errorf("a deleted user's login at member 3: %v", err)
			}
		})
	}
}

// setUpJWTAuth creates root, a role reading k and alice holding it,
// writes k, enables auth, and when login is set returns a client logged
// in as root.
func setUpJWTAuth(ctx context.Context, t *testing.T, endpoint string, login bool) *clientv3.Client {
	t.Helper()
	c := newClientv3(t, endpoint)
	steps := []func() error{
		func() error { _, err := c.Put(ctx, "k", "v"); return err },
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "reader", "k", "", clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, "alice", "alicepw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "alice", "reader"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if !login {
		return nil
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Username: "root", Password: "rootpw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

// TestJWTVerifyOnlyMember: a member given only the public key takes no
// logins, with etcd's error, and neither server starts with options it
// cannot use.
func TestJWTVerifyOnlyMember(t *testing.T) {
	priv, pub := jwtKeys(t)
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			m := srv.start(t, "--auth-token", "jwt,sign-method=ES256,pub-key="+pub)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			setUpJWTAuth(ctx, t, m.Endpoint, false)
			_, err := dialRaw(t, m).auth.Authenticate(ctx, &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"})
			// etcd answers with its auth store's error as it is, code
			// Unknown; so does kvd.
			if st := status.Convert(err); st.Code() != codes.Unknown || st.Message() != "auth: token signing attempted with verify-only key" {
				t.Fatalf("a login at a verify-only member: %v", err)
			}
		})
	}
	for _, bad := range []string{
		"jwt,sign-method=ES256",
		"jwt,sign-method=XS256,priv-key=" + priv,
		"jwt,sign-method=RS256,priv-key=" + priv,
		"jwt,sign-method=ES256,priv-key=" + priv + ",ttl=soon",
		"jwt,sign-method=ES256,priv-key=" + filepath.Join(t.TempDir(), "missing"),
	} {
		for _, bin := range []string{framework.KvdBin(t), framework.RequireBin(t, framework.EtcdBin())} {
			r := framework.Run(t, framework.Invocation{Bin: bin, Args: []string{
				"--data-dir", t.TempDir(), "--auth-token", bad,
				"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
				"--listen-peer-urls", "http://127.0.0.1:0",
			}, Timeout: 20 * time.Second})
			if r.Code == 0 || r.Code == -1 {
				t.Errorf("%s --auth-token %s: exit %d", filepath.Base(bin), bad, r.Code)
			}
			if filepath.Base(bin) == "kvd" && !strings.Contains(r.Stderr, "--auth-token") {
				t.Errorf("kvd --auth-token %s: stderr %q does not name the flag", bad, r.Stderr)
			}
		}
	}
}
