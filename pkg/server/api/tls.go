package api

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"

	"google.golang.org/grpc/credentials"
)

// ServerTLS adapts a client listener's TLS configuration to serving gRPC
// and HTTP on one port. gRPC clients offer only HTTP/2 in ALPN; browsers,
// curl and other HTTP clients offer HTTP/1.1 too, and are given it, so
// their requests reach the HTTP handler rather than the gRPC server
// (Serve tells the two apart by the HTTP/2 preface). etcd instead serves
// gRPC inside its HTTP server over TLS, a slower path kvd avoids.
func ServerTLS(base *tls.Config) *tls.Config {
	h2 := base.Clone()
	h2.NextProtos = []string{"h2"}
	h1 := base.Clone()
	h1.NextProtos = []string{"http/1.1"}
	cfg := base.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(hello.SupportedProtos, "h2") && !slices.Contains(hello.SupportedProtos, "http/1.1") {
			return h2, nil
		}
		return h1, nil
	}
	return cfg
}

// connCreds lets the gRPC server see the TLS state of connections that
// the listener has already secured, so a call can be identified by its
// client certificate; plain connections pass through as they are.
type connCreds struct{}

var errClientHandshake = errors.New("api: server credentials cannot dial")

func (connCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errClientHandshake
}

func (connCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, authInfo(c), nil
}

// authInfo is the security of a connection the listener accepted.
func authInfo(c net.Conn) credentials.AuthInfo {
	inner := c
	if pc, ok := c.(*peekedConn); ok {
		inner = pc.Conn
	}
	if tc, ok := inner.(*tls.Conn); ok {
		return credentials.TLSInfo{
			State:          tc.ConnectionState(),
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		}
	}
	return plainInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
}

func (connCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "kvd"}
}

func (connCreds) Clone() credentials.TransportCredentials { return connCreds{} }

func (connCreds) OverrideServerName(string) error { return nil }

type plainInfo struct{ credentials.CommonAuthInfo }

func (plainInfo) AuthType() string { return "insecure" }
