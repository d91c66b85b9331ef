package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/network"
)

// networkRow is one network as ls and inspect show it.
type networkRow struct {
	Name       string                  `json:"Name"`
	ID         string                  `json:"Id"`
	Driver     string                  `json:"Driver"`
	Subnet     string                  `json:"Subnet"`
	Gateway    string                  `json:"Gateway"`
	Bridge     string                  `json:"Bridge"`
	Internal   bool                    `json:"Internal"`
	Created    time.Time               `json:"Created"`
	Containers map[string]networkEntry `json:"Containers"`
}

// networkEntry is one instance on a network, as docker network inspect
// shows it.
type networkEntry struct {
	Name        string   `json:"Name"`
	IPv4Address string   `json:"IPv4Address"`
	MacAddress  string   `json:"MacAddress"`
	Aliases     []string `json:"Aliases"`
	Running     bool     `json:"Running"`
}

func makeNetworkRow(n *network.Network) networkRow {
	r := networkRow{Name: n.Name, ID: n.ID, Driver: "bridge", Subnet: n.Subnet.String(), Gateway: n.Gateway.String(),
		Bridge: n.Bridge, Internal: n.Internal, Created: n.Created, Containers: map[string]networkEntry{}}
	for _, l := range n.Leases {
		r.Containers[l.Instance] = networkEntry{Name: l.Name, IPv4Address: fmt.Sprintf("%s/%d", l.Addr, n.Subnet.Bits()),
			MacAddress: l.MAC, Aliases: append([]string{}, l.Aliases...), Running: l.Active}
	}
	return r
}

func newNetworkCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage private networks: bridges on which instances find each other by name"}
	var subnet, gateway string
	var internal bool
	create := &cobra.Command{
		Use:   "create [--subnet CIDR] [--gateway IP] [--internal] NAME",
		Short: "Create a private network (a Linux bridge; needs root or CAP_NET_ADMIN)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			if reservedNetwork(args[0]) {
				return fmt.Errorf("network name %q is reserved (--network %s means %s): choose another: %w", args[0], args[0], reservedMeaning(args[0]), network.ErrBadInput)
			}
			n, err := is.CreateNetwork(cmd.Context(), args[0], network.CreateOptions{Subnet: subnet, Gateway: gateway, Internal: internal})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, n.ID)
			return nil
		},
	}
	create.Flags().StringVar(&subnet, "subnet", "", "IPv4 subnet in CIDR form (default: a free /24 from "+network.DefaultPool.String()+")")
	create.Flags().StringVar(&gateway, "gateway", "", "the host's address on the network (default: the subnet's first address)")
	create.Flags().BoolVar(&internal, "internal", false, "no route to the outside: instances reach only each other and the host")

	var format string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List private networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			ns, err := is.Networks()
			if err != nil {
				return err
			}
			var rows []networkRow
			for _, n := range ns {
				rows = append(rows, makeNetworkRow(n))
			}
			if format != "" {
				return printFormatted(e.stdout, format, rows)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(w, "NETWORK ID\tNAME\tSUBNET\tGATEWAY\tINSTANCES")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", r.ID[:12], r.Name, r.Subnet, r.Gateway, len(r.Containers))
			}
			return w.Flush()
		},
	}
	ls.Flags().StringVar(&format, "format", "", "Go template or json")

	var iformat string
	inspect := &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks as JSON, with the instances on them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			var rows []networkRow
			for _, a := range args {
				n, err := is.Network(a)
				if err != nil {
					return err
				}
				rows = append(rows, makeNetworkRow(n))
			}
			return printInspected(e.stdout, iformat, rows)
		},
	}
	inspect.Flags().StringVarP(&iformat, "format", "f", "", "Go template or json")

	rm := &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks no instance is on, with their bridges, rules and resolvers",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachRef(e, args, func(is *instance.Instances, a string) error {
				n, err := is.RemoveNetwork(cmd.Context(), a)
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, n.Name)
				return nil
			})
		},
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove every network no instance is on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			names, err := is.PruneNetworks(cmd.Context())
			for _, n := range names {
				fmt.Fprintln(e.stdout, "Removed network "+n)
			}
			return err
		},
	}
	var ip string
	var aliases []string
	connect := &cobra.Command{
		Use:   "connect [--ip ADDR] [--alias NAME] NETWORK INSTANCE",
		Short: "Put a stopped instance on a network (from its next start; no hot-plug)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			return is.Connect(cmd.Context(), args[1], instance.NetworkRequest{Name: args[0], IP: ip, Aliases: aliases})
		},
	}
	connect.Flags().StringVar(&ip, "ip", "", "the instance's IPv4 address on the network (default: the lowest free)")
	connect.Flags().StringSliceVar(&aliases, "alias", nil, "another name the instance answers to on the network (repeatable)")
	disconnect := &cobra.Command{
		Use:   "disconnect NETWORK INSTANCE",
		Short: "Take a stopped instance off a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			is, err := e.instances()
			if err != nil {
				return err
			}
			return is.Disconnect(cmd.Context(), args[1], args[0])
		},
	}
	cmd.AddCommand(create, ls, inspect, rm, prune, connect, disconnect)
	return cmd
}

func reservedNetwork(name string) bool {
	return name == instance.NetworkDefault || name == instance.NetworkNone || name == "host" || name == "bridge"
}

func reservedMeaning(name string) string {
	switch name {
	case instance.NetworkNone:
		return "no NIC"
	case "host", "bridge":
		return "what docker means by it, which nos does not have"
	}
	return "user-mode networking"
}

// parseNetworkFlags pairs --network with --ip and --network-alias as
// docker does: --ip and the aliases belong to the first private network.
func parseNetworkFlags(nets []string, ip string, aliases []string) (reqs []instance.NetworkRequest, none bool, err error) {
	for i, n := range nets {
		r := instance.NetworkRequest{Name: strings.TrimSpace(n)}
		if i == 0 {
			r.IP, r.Aliases = ip, aliases
		}
		reqs = append(reqs, r)
	}
	if len(nets) == 0 && (ip != "" || len(aliases) > 0) {
		return nil, false, fmt.Errorf("--ip and --network-alias need --network NAME (a private network): %w", instance.ErrBadFlag)
	}
	return instance.NormalizeNetworks(reqs)
}

func newResolverCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    instance.ResolverVerb + " NETWORK",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := e.layout()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(e.stderr, nil))
			return instance.RunResolver(context.Background(), h, args[0], log)
		},
	}
}
