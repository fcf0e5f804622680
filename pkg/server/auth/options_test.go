package auth

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTokenConfig(t *testing.T) {
	k := newTestKeys(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	writeFile(t, garbage, []byte("not a key"))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		spec string
		// want is the error's text, or for a good spec "simple", "jwt"
		// or "verify-only".
		want    string
		ttl     time.Duration
		ignored []string
	}{
		{spec: "simple", want: "simple"},
		{spec: "simple,ttl=1m", want: "simple", ignored: []string{"ttl"}},
		{spec: "jwt,sign-method=RS256,priv-key=" + k.rsa.priv, want: "jwt", ttl: 5 * time.Minute},
		{spec: "jwt,pub-key=" + k.rsa.pub + ",priv-key=" + k.rsa.priv + ",sign-method=RS384,ttl=30s", want: "jwt", ttl: 30 * time.Second},
		{spec: "jwt,sign-method=PS512,pub-key=" + k.rsa.pub, want: "verify-only", ttl: 5 * time.Minute},
		{spec: "jwt,sign-method=ES256,priv-key=" + k.ec.priv + ",pub-key=" + k.ec.pub, want: "jwt", ttl: 5 * time.Minute},
		{spec: "jwt,sign-method=ES512,pub-key=" + k.ec.pub, want: "sign-method=ES512 needs a 521-bit curve, the key's is 256 bits"},
		{spec: "jwt,sign-method=EdDSA,priv-key=" + k.ed.priv + ",ttl=1h", want: "jwt", ttl: time.Hour},
		{spec: "jwt,sign-method=HS256,priv-key=" + k.secret, want: "jwt", ttl: 5 * time.Minute},
		{spec: "jwt,sign-method=RS256,priv-key=" + k.rsa.priv + ",foo=bar", want: "jwt", ttl: 5 * time.Minute, ignored: []string{"foo"}},

		{spec: "", want: "--auth-token is empty"},
		{spec: "oauth", want: `unknown kind of token "oauth", want simple or jwt`},
		{spec: "jwt", want: "sign-method is required"},
		{spec: "jwt,priv-key=" + k.rsa.priv, want: "sign-method is required"},
		{spec: "jwt,sign-method=RS1024,priv-key=" + k.rsa.priv, want: "sign-method=RS1024: want one of RS256"},
		{spec: "jwt,sign-method=none,priv-key=" + k.rsa.priv, want: "sign-method=none: want one of"},
		{spec: "jwt,sign-method=RS256", want: "needs priv-key (to sign and verify) or pub-key (to verify only)"},
		{spec: "jwt,sign-method=HS256,pub-key=" + k.rsa.pub, want: "sign-method=HS256 needs priv-key"},
		{spec: "jwt,sign-method=RS256,priv-key=" + missing, want: "priv-key: open " + missing},
		{spec: "jwt,sign-method=RS256,pub-key=" + missing, want: "pub-key: open " + missing},
		{spec: "jwt,sign-method=RS256,priv-key=" + garbage, want: "priv-key=" + garbage + ": "},
		{spec: "jwt,sign-method=ES256,priv-key=" + k.rsa.priv, want: "priv-key=" + k.rsa.priv + ": "},
		{spec: "jwt,sign-method=EdDSA,pub-key=" + k.ec.pub, want: "pub-key=" + k.ec.pub + ": "},
		{spec: "jwt,sign-method=RS256,priv-key=" + k.rsa.priv + ",pub-key=" + k.rsa2.pub, want: "pub-key=" + k.rsa2.pub + " does not match priv-key=" + k.rsa.priv},
		{spec: "jwt,sign-method=ES256,priv-key=" + k.ec.priv + ",pub-key=" + k.ec2.pub, want: "does not match"},
		{spec: "jwt,sign-method=RS256,priv-key=" + k.rsa.priv + ",ttl=5", want: `ttl=5: time: missing unit in duration "5"`},
		{spec: "jwt,sign-method=RS256,priv-key=" + k.rsa.priv + ",ttl=0s", want: "ttl=0s: must be positive"},
		{spec: "jwt,sign-method=RS256,priv-key=" + k.rsa.priv + ",ttl=-1m", want: "ttl=-1m: must be positive"},
		{spec: "jwt,sign-method", want: `--auth-token option "sign-method": want key=value`},
		{spec: "jwt,priv-key=/a=b", want: `--auth-token option "priv-key=/a=b": want key=value`},
		{spec: "jwt,sign-method=RS256,sign-method=ES256", want: `--auth-token option "sign-method" is given twice`},
		{spec: "jwt,", want: `--auth-token option "": want key=value`},
	}
	for _, tt := range tests {
		c, err := ParseTokenConfig(tt.spec)
		switch tt.want {
		case "simple", "jwt", "verify-only":
			if err != nil {
				t.Errorf("%q: %v", tt.spec, err)
				continue
			}
			kind := c.Kind()
			if c.VerifyOnly() {
				kind = "verify-only"
			}
			if kind != tt.want || !slices.Equal(c.Ignored, tt.ignored) {
				t.Errorf("%q: kind %s, ignored %q; want %s, %q", tt.spec, kind, c.Ignored, tt.want, tt.ignored)
			}
			if c.jwt != nil && c.jwt.ttl != tt.ttl {
				t.Errorf("%q: ttl %v, want %v", tt.spec, c.jwt.ttl, tt.ttl)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%q: error %v, want one containing %q", tt.spec, err, tt.want)
			}
		}
	}
}
