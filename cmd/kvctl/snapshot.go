package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/kvd-io/kvd/pkg/server/snapshot"
)

// snapshot save is etcdctl's; status and restore are etcdutl's, which
// work on files offline, without a server (pkg/server/snapshot).
func newSnapshotCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot <subcommand>",
		Short:   "Saves, inspects and restores database snapshots",
		GroupID: groupCluster,
	}
	cmd.AddCommand(newSnapshotSaveCommand(g), newSnapshotStatusCommand(g), newSnapshotRestoreCommand(g))
	return cmd
}

func newSnapshotSaveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "save <filename>",
		Short: "Stores a member's database snapshot in a file",
		Long: `Streams the database of the one member named by --endpoints into <filename>.part,
checks the SHA-256 the member sends after it, syncs the file and renames it to
<filename>. The file keeps the digest at its end, for restore to check.`,
		RunE: func(cmd *cobra.Command, args []string) error { return snapshotSave(g, cmd, args) },
	}
}

func snapshotSave(g *globals, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fail(exitBadArgs, "snapshot save expects one argument <filename>")
	}
	if _, err := g.prepare(cmd); err != nil {
		return err
	}
	if len(g.eps) != 1 {
		return fail(exitInterrupted, "snapshot must be requested to one selected node, not multiple %v", g.eps)
	}
	c, err := g.connect(nil)
	if err != nil {
		return failWith(exitInterrupted, err)
	}
	defer c.Close()
	// Like etcdctl's, a save has no time limit unless one is asked for.
	ctx, cancel := context.WithCancel(context.Background())
	if cmd.Flags().Changed("command-timeout") {
		ctx, cancel = g.commandCtx()
	}
	defer cancel()

	path := args[0]
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fail(exitInterrupted, "could not open %s (%v)", part, err)
	}
	defer os.Remove(part) // gone once renamed; left over only on failure
	defer f.Close()

	resp, err := c.SnapshotWithVersion(ctx)
	if err != nil {
		// etcdctl prints a refused stream's status as gRPC words it
		// ("rpc error: code = PermissionDenied desc = ..."), not as
		// etcd's bare message.
		if st, ok := status.FromError(err); ok {
			err = st.Err()
		}
		return failWith(exitInterrupted, err)
	}
	defer resp.Snapshot.Close()
	check := newDigestCheck()
	var out io.Writer = io.MultiWriter(f, check)
	if bar := startProgress(g, int(resp.Size+sha256.Size)); bar != nil {
		defer bar.Finish()
		out = io.MultiWriter(out, progressWriter{bar})
	}
	size, err := io.Copy(out, resp.Snapshot)
	if err != nil {
		return fail(exitInterrupted, "could not write snapshot: %v", err)
	}
	if size%512 != sha256.Size {
		return fail(exitInterrupted, "sha256 checksum not found [bytes: %d]", size)
	}
	if err := check.verify(); err != nil {
		return fail(exitInterrupted, "snapshot from %s is corrupted: %v", g.eps[0], err)
	}
	if err := f.Sync(); err != nil {
		return fail(exitInterrupted, "could not fsync snapshot: %v", err)
	}
	if err := f.Close(); err != nil {
		return fail(exitInterrupted, "could not close file descriptor: %v", err)
	}
	if err := os.Rename(part, path); err != nil {
		return fail(exitInterrupted, "could not rename %s to %s (%v)", part, path, err)
	}
	fmt.Fprintf(g.stdout, "Snapshot saved at %s\n", path)
	if resp.Version != "" {
		fmt.Fprintf(g.stdout, "Server version %s\n", resp.Version)
	}
	return nil
}

// digestCheck hashes everything written to it except the last 32 bytes,
// which it keeps: the digest the member sent of the bytes before it.
type digestCheck struct {
	h    hash.Hash
	tail []byte
}

func newDigestCheck() *digestCheck { return &digestCheck{h: sha256.New()} }

func (d *digestCheck) Write(p []byte) (int, error) {
	if len(p) >= sha256.Size {
		d.h.Write(d.tail)
		d.h.Write(p[:len(p)-sha256.Size])
		d.tail = append(d.tail[:0], p[len(p)-sha256.Size:]...)
		return len(p), nil
	}
	d.tail = append(d.tail, p...)
	if over := len(d.tail) - sha256.Size; over > 0 {
		d.h.Write(d.tail[:over])
		d.tail = append(d.tail[:0], d.tail[over:]...)
	}
	return len(p), nil
}

func (d *digestCheck) verify() error {
	if got := d.h.Sum(nil); !bytes.Equal(got, d.tail) {
		return fmt.Errorf("SHA-256 of the received database is %x, the member sent %x", got, d.tail)
	}
	return nil
}

func newSnapshotStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status <filename>",
		Short: "Shows what a snapshot file holds",
		Long: `When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.
`,
		RunE: func(_ *cobra.Command, args []string) error { return snapshotStatus(g, args) },
	}
}

func snapshotStatus(g *globals, args []string) error {
	if len(args) != 1 {
		return fail(exitBadArgs, "snapshot status requires exactly one argument")
	}
	if _, err := os.Stat(args[0]); err != nil {
		return failWith(exitError, err)
	}
	print, err := statusPrinter(g)
	if err != nil {
		return err
	}
	st, err := snapshot.StatusOf(args[0])
	if err != nil {
		return failWith(exitError, err)
	}
	return print(st)
}

// statusPrinter prints a file's status in etcdutl's formats.
func statusPrinter(g *globals) (func(snapshot.Status) error, error) {
	row := func(st snapshot.Status) []string {
		return []string{fmt.Sprintf("%x", st.Hash), fmt.Sprint(st.Revision), fmt.Sprint(st.TotalKey),
			humanize.Bytes(uint64(st.TotalSize)), st.Version}
	}
	switch g.writeOut {
	case "simple":
		return func(st snapshot.Status) error {
			_, err := fmt.Fprintln(g.stdout, strings.Join(row(st), ", "))
			return err
		}, nil
	case "table":
		return func(st snapshot.Status) error {
			tp := &tablePrinter{out: g.stdout}
			return tp.draw([]string{"hash", "revision", "total keys", "total size", "version"}, [][]string{row(st)})
		}, nil
	case "json":
		return func(st snapshot.Status) error {
			b, err := json.Marshal(st)
			if err != nil {
				return failWith(exitError, err)
			}
			_, err = fmt.Fprintln(g.stdout, string(b))
			return err
		}, nil
	case "fields":
		return func(st snapshot.Status) error {
			_, err := fmt.Fprintf(g.stdout, "\"Hash\" : %d\n\"Revision\" : %d\n\"Keys\" : %d\n\"Size\" : %d\n\"Version\" : %s\n",
				st.Hash, st.Revision, st.TotalKey, st.TotalSize, st.Version)
			return err
		}, nil
	case "protobuf":
		return nil, fail(exitBadFeature, "protobuf not supported as output format")
	}
	return nil, fail(exitBadFeature, "unsupported output format")
}

type restoreFlags struct {
	cfg      snapshot.RestoreConfig
	peerURLs string
}

func newSnapshotRestoreCommand(g *globals) *cobra.Command {
	f := &restoreFlags{}
	cmd := &cobra.Command{
		Use:   "restore <filename> --data-dir {output dir} [options]",
		Short: "Restores a snapshot into a new member's data dir",
		Long: `Builds the data dir of one member of a new cluster from a snapshot file (saved from
kvd or etcd): every key, lease, user and role of the snapshot, the members given by
--initial-cluster and a cluster ID from --initial-cluster-token. Run it once per
member with the same file and flags except --name, --initial-advertise-peer-urls
and --data-dir, then start each kvd with its data dir. A file whose SHA-256 does not
match, or that is cut short, is refused and nothing is written.`,
		RunE: func(_ *cobra.Command, args []string) error { return snapshotRestore(g, f, args) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.cfg.DataDir, "data-dir", "", "path of the data dir to create (default \"${name}.kvd\")")
	fs.StringVar(&f.cfg.WALDir, "wal-dir", "", "put the WAL here instead of under --data-dir, which then links to it")
	fs.StringVar(&f.cfg.InitialCluster, "initial-cluster", "default=http://localhost:2380", "the new cluster's members, as name=peer-url,...")
	fs.StringVar(&f.cfg.InitialClusterToken, "initial-cluster-token", "etcd-cluster", "the new cluster's token, from which its member and cluster IDs derive")
	fs.StringVar(&f.peerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "this member's peer URLs, as in --initial-cluster")
	fs.StringVar(&f.cfg.Name, "name", "default", "this member's name in --initial-cluster")
	fs.BoolVar(&f.cfg.SkipHashCheck, "skip-hash-check", false, "accept a file without a SHA-256 (a database copied from a data dir)")
	fs.Uint64Var(&f.cfg.RevisionBump, "bump-revision", 0, "raise the revision by this much after the restore")
	fs.BoolVar(&f.cfg.MarkCompacted, "mark-compacted", false, "mark the revision after the restore compacted (required with --bump-revision > 0, refused otherwise)")
	return cmd
}

func snapshotRestore(g *globals, f *restoreFlags, args []string) error {
	if len(args) != 1 {
		return fail(exitBadArgs, "snapshot restore requires exactly one argument")
	}
	if (f.cfg.RevisionBump == 0) == f.cfg.MarkCompacted {
		return fail(exitBadArgs, "--mark-compacted required if --revision-bump > 0")
	}
	cfg := f.cfg
	cfg.SnapshotPath = args[0]
	cfg.PeerURLs = strings.Split(f.peerURLs, ",")
	cfg.Logger = slog.New(slog.NewTextHandler(g.stderr, nil))
	if err := snapshot.Restore(cfg); err != nil {
		return failWith(exitError, err)
	}
	return nil
}
