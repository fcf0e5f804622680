package main

import (
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/kvd-io/kvd/pkg/server"
	"github.com/kvd-io/kvd/pkg/server/tlsinfo"
)

// addTLSFlags adds etcd's TLS flags for client and peer traffic.
func addTLSFlags(fs *pflag.FlagSet) {
	d := server.Defaults()
	fs.String("cert-file", "", "Path to the TLS certificate served on https:// client URLs.")
	fs.String("key-file", "", "Path to the key of --cert-file.")
	fs.String("client-cert-file", "", "Path to the certificate this member shows when it connects to client URLs itself, instead of --cert-file.")
	fs.String("client-key-file", "", "Path to the key of --client-cert-file.")
	fs.Bool("client-cert-auth", false, "Require clients to present a certificate signed by --trusted-ca-file; with auth enabled, its common name is the user of calls without a token.")
	fs.String("client-crl-file", "", "Path to a certificate revocation list; client certificates it names are refused.")
	fs.String("trusted-ca-file", "", "Path to the CA bundle that client certificates must be signed by.")
	fs.Bool("auto-tls", false, "Serve https:// client URLs with a self-signed certificate generated in the data dir, when --cert-file is not given.")
	fs.String("peer-cert-file", "", "Path to the TLS certificate served on https:// peer URLs and shown to peers.")
	fs.String("peer-key-file", "", "Path to the key of --peer-cert-file.")
	fs.String("peer-client-cert-file", "", "Path to the certificate shown to peers when dialling them, instead of --peer-cert-file.")
	fs.String("peer-client-key-file", "", "Path to the key of --peer-client-cert-file.")
	fs.Bool("peer-client-cert-auth", false, "Require peers to present a certificate signed by --peer-trusted-ca-file.")
	fs.String("peer-trusted-ca-file", "", "Path to the CA bundle that peers' certificates must be signed by.")
	fs.Bool("peer-auto-tls", false, "Secure https:// peer URLs with a self-signed certificate generated in the data dir, when --peer-cert-file is not given.")
	fs.String("peer-crl-file", "", "Path to a certificate revocation list; peer certificates it names are refused.")
	fs.Bool("peer-skip-client-san-verification", false, "Do not check that a peer certificate's IP addresses or DNS names match the address its connection comes from.")
	fs.StringSlice("peer-cert-allowed-cn", nil, "Comma-separated common names a peer's certificate must carry one of.")
	fs.Uint("self-signed-cert-validity", d.SelfSignedCertValidity, "Years the certificates of --auto-tls and --peer-auto-tls are valid for.")
	fs.StringSlice("cipher-suites", nil, "Comma-separated TLS cipher suites for client and peer traffic (empty: Go's choice).")
	fs.String("tls-min-version", d.TLSMinVersion, "Lowest TLS version accepted: TLS1.2 or TLS1.3.")
	fs.String("tls-max-version", "", "Highest TLS version accepted: TLS1.2 or TLS1.3 (empty: Go's choice).")
}

// tlsConfigFrom fills the TLS part of cfg from the flags. A config file
// may also hold each side's settings as etcd's does, under
// client-transport-security and peer-transport-security (cert-file,
// key-file, client-cert-file, client-key-file, client-cert-auth,
// trusted-ca-file, auto-tls, allowed-cn); a flag wins over them.
func tlsConfigFrom(v *viper.Viper, cfg *server.Config) {
	str := func(flag, section, key string) string {
		if s := v.GetString(flag); s != "" {
			return s
		}
		return v.GetString(section + "." + key)
	}
	on := func(flag, section, key string) bool {
		return v.GetBool(flag) || v.GetBool(section+"."+key)
	}
	const cs, ps = "client-transport-security", "peer-transport-security"
	cfg.ClientTLS = tlsinfo.Info{
		CertFile:       str("cert-file", cs, "cert-file"),
		KeyFile:        str("key-file", cs, "key-file"),
		ClientCertFile: str("client-cert-file", cs, "client-cert-file"),
		ClientKeyFile:  str("client-key-file", cs, "client-key-file"),
		TrustedCAFile:  str("trusted-ca-file", cs, "trusted-ca-file"),
		ClientCertAuth: on("client-cert-auth", cs, "client-cert-auth"),
		CRLFile:        v.GetString("client-crl-file"),
	}
	cfg.PeerTLS = tlsinfo.Info{
		CertFile:       str("peer-cert-file", ps, "cert-file"),
		KeyFile:        str("peer-key-file", ps, "key-file"),
		ClientCertFile: str("peer-client-cert-file", ps, "client-cert-file"),
		ClientKeyFile:  str("peer-client-key-file", ps, "client-key-file"),
		TrustedCAFile:  str("peer-trusted-ca-file", ps, "trusted-ca-file"),
		ClientCertAuth: on("peer-client-cert-auth", ps, "client-cert-auth"),
		CRLFile:        v.GetString("peer-crl-file"),
		AllowedCNs:     urlList(v, "peer-cert-allowed-cn"),
		CheckClientSAN: !on("peer-skip-client-san-verification", ps, "skip-client-san-verification"),
	}
	if len(cfg.PeerTLS.AllowedCNs) == 0 {
		cfg.PeerTLS.AllowedCNs = urlList(v, ps+".allowed-cn")
	}
	cfg.ClientAutoTLS = on("auto-tls", cs, "auto-tls")
	cfg.PeerAutoTLS = on("peer-auto-tls", ps, "auto-tls")
	cfg.SelfSignedCertValidity = v.GetUint("self-signed-cert-validity")
	cfg.CipherSuites = urlList(v, "cipher-suites")
	cfg.TLSMinVersion = v.GetString("tls-min-version")
	cfg.TLSMaxVersion = v.GetString("tls-max-version")
}
