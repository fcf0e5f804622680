package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// keyPair is a private and a public key in PEM files, as an operator
// would hand them to --auth-token.
type keyPair struct{ priv, pub string }

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is made once per test binary: 2048-bit generation is slow
// enough to notice on two shared cores.
func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// writeKeys writes key and its public half to dir as PKCS#8 and PKIX
// PEM files named after name.
func writeKeys(t *testing.T, dir, name string, key crypto.Signer) keyPair {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	kp := keyPair{priv: filepath.Join(dir, name+".key"), pub: filepath.Join(dir, name+".pub")}
	writeFile(t, kp.priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	writeFile(t, kp.pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	return kp
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// testKeys are one key pair of each family, and a second RSA and ECDSA
// pair that match none of them.
type testKeys struct {
	rsa, rsa2, ec, ec2, ec384, ed keyPair
	secret                        string
}

func newTestKeys(t *testing.T) testKeys {
	t.Helper()
	dir := t.TempDir()
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa2, err := rsa.GenerateKey(rand.Reader, 1024) // only ever refused
	if err != nil {
		t.Fatal(err)
	}
	k := testKeys{
		rsa:    writeKeys(t, dir, "rsa", testRSAKey(t)),
		rsa2:   writeKeys(t, dir, "rsa2", rsa2),
		ec:     writeKeys(t, dir, "ec", ec(elliptic.P256())),
		ec2:    writeKeys(t, dir, "ec2", ec(elliptic.P256())),
		ec384:  writeKeys(t, dir, "ec384", ec(elliptic.P384())),
		ed:     writeKeys(t, dir, "ed", ed),
		secret: filepath.Join(dir, "secret"),
	}
	writeFile(t, k.secret, []byte("a shared secret of the whole cluster"))
	return k
}
