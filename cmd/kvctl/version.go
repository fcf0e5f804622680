package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kvd-io/kvd/pkg/version"
)

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Prints kvctl's release and the API version it speaks",
		GroupID: groupUtility,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(g.stdout, "kvctl version:", version.Version)
			fmt.Fprintln(g.stdout, "API version:", version.APIVersion)
		},
	}
}
