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
	fs.StringSlice("peer-cert-allowed-cn", nil, "Comma-separated common names a peer's certificate must carry one of.")
	fs.Uint("self-signed-cert-validity", d.SelfSignedCertValidity, "Years the certificates of --auto-tls and --peer-auto-tls are valid for.")
	fs.StringSlice("cipher-suites", nil, "Comma-separated TLS cipher suites for client and peer traffic (empty: Go's choice).")
	fs.String("tls-min-version", d.TLSMinVersion, "Lowest TLS version accepted: TLS1.2 or TLS1.3.")
	fs.String("tls-max-version", "", "Highest TLS version accepted: TLS1.2 or TLS1.3 (empty: Go's choice).")
}

// tlsConfigFrom fills the TLS part of cfg from the flags.
func tlsConfigFrom(v *viper.Viper, cfg *server.Config) {
	cfg.ClientTLS = tlsinfo.Info{
		CertFile:       v.GetString("cert-file"),
		KeyFile:        v.GetString("key-file"),
		ClientCertFile: v.GetString("client-cert-file"),
		ClientKeyFile:  v.GetString("client-key-file"),
		TrustedCAFile:  v.GetString("trusted-ca-file"),
		ClientCertAuth: v.GetBool("client-cert-auth"),
		CRLFile:        v.GetString("client-crl-file"),
	}
	cfg.PeerTLS = tlsinfo.Info{
		CertFile:       v.GetString("peer-cert-file"),
		KeyFile:        v.GetString("peer-key-file"),
		ClientCertFile: v.GetString("peer-client-cert-file"),
		ClientKeyFile:  v.GetString("peer-client-key-file"),
		TrustedCAFile:  v.GetString("peer-trusted-ca-file"),
		ClientCertAuth: v.GetBool("peer-client-cert-auth"),
		CRLFile:        v.GetString("peer-crl-file"),
		AllowedCNs:     urlList(v, "peer-cert-allowed-cn"),
	}
	cfg.ClientAutoTLS = v.GetBool("auto-tls")
	cfg.PeerAutoTLS = v.GetBool("peer-auto-tls")
	cfg.SelfSignedCertValidity = v.GetUint("self-signed-cert-validity")
	cfg.CipherSuites = urlList(v, "cipher-suites")
	cfg.TLSMinVersion = v.GetString("tls-min-version")
	cfg.TLSMaxVersion = v.GetString("tls-max-version")
}
