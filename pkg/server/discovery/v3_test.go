package discovery

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRegistryKeys(t *testing.T) {
	if got, want := SizeKey("tok"), "/_etcd/registry/tok/_config/size"; got != want {
		t.Errorf("SizeKey = %q, want %q", got, want)
	}
	if got, want := MemberKey("tok", 0x8e9e05c52164694d), "/_etcd/registry/tok/members/8e9e05c52164694d"; got != want {
		t.Errorf("MemberKey = %q, want %q", got, want)
	}
	if got, want := RegistrationValue("m1", []string{"http://b:2", "http://a:1"}), "m1=http://a:1,m1=http://b:2"; got != want {
		t.Errorf("RegistrationValue = %q, want %q", got, want)
	}
}

func TestRegistryCluster(t *testing.T) {
	members := []registration{
		{"/k/1", "a=http://127.0.0.1:1"},
		{"/k/2", "b=http://127.0.0.1:2,b=http://127.0.0.1:3"},
		{"/k/3", "c=http://127.0.0.1:4"},
	}
	tests := []struct {
		name    string
		reg     registry
		want    string
		wantErr error
	}{
		{"first size by creation", registry{size: 2, members: members}, "a=http://127.0.0.1:1,b=http://127.0.0.1:2,b=http://127.0.0.1:3", nil},
		{"all", registry{size: 3, members: members}, "a=http://127.0.0.1:1,b=http://127.0.0.1:2,b=http://127.0.0.1:3,c=http://127.0.0.1:4", nil},
		{"bad URL", registry{size: 1, members: []registration{{"/k/1", "a=127.0.0.1:1"}}}, "", ErrInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.reg.cluster()
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("cluster() = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if p := (registry{members: members}).position("/k/3"); p != 2 {
		t.Errorf("position = %d, want 2", p)
	}
}

func TestJoinV3Config(t *testing.T) {
	ok := V3Config{Endpoints: []string{"127.0.0.1:1"}, Token: "t", Joiner: Joiner{Name: "m", PeerURLs: []string{"http://127.0.0.1:2"}, MemberID: 1}}
	tests := []struct {
		name    string
		change  func(*V3Config)
		wantErr string
	}{
		{"no endpoint", func(c *V3Config) { c.Endpoints = nil }, "no discovery endpoint"},
		{"no token", func(c *V3Config) { c.Token = "" }, "token is empty"},
		{"slash in token", func(c *V3Config) { c.Token = "a/b" }, "must not contain"},
		{"no name", func(c *V3Config) { c.Name = "" }, "name is empty"},
		{"no peer URL", func(c *V3Config) { c.PeerURLs = nil }, "no peer URL"},
		{"no ID", func(c *V3Config) { c.MemberID = 0 }, "ID is zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			_, err := JoinV3(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
