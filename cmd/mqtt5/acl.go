package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/mqtt5go/mqtt5/broker/auth"
)

const aclSynopsis = `acl check --acl-file FILE [--client-id ID] [--role ROLE]... USER TOPIC ACCESS

Decides whether USER may read (receive messages published to) the topic
name TOPIC, write (publish to) it, or subscribe to the topic filter TOPIC
(a $share/<group>/ prefix is checked on its inner filter), as the broker
started with --acl-file FILE would, and prints the rule that decides.
ACCESS is read, write or subscribe; USER may be "" for an anonymous client.
Exit status: 0 allowed, 1 denied, 2 usage error.`

// errDenied is the result of an "acl check" that denies.
var errDenied = errors.New("access denied")

func runACL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "check" && args[0] != "-h" && args[0] != "-help" && args[0] != "--help") {
		fmt.Fprintf(stderr, "Usage: mqtt5 %s\n", aclSynopsis)
		return fmt.Errorf("%w: want the subcommand \"check\"", errUsage)
	}
	if args[0] == "check" {
		args = args[1:]
	}
	fs := newFlagSet("acl", aclSynopsis, stderr)
	file := fs.String("acl-file", "", "the ACL file (required)")
	clientID := fs.String("client-id", "", "client identifier, for rules with %c")
	var roles stringList
	fs.Var(&roles, "role", "a role the client has besides those the file assigns to USER, as an authenticator such as JWT would set (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("%w: --acl-file is required", errUsage)
	}
	if fs.NArg() != 3 {
		return fmt.Errorf("%w: want USER TOPIC ACCESS", errUsage)
	}
	user, name := fs.Arg(0), fs.Arg(1)
	access, err := auth.ParseAccess(fs.Arg(2))
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	acl, err := auth.LoadACL(*file, auth.ACLOptions{Logger: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		return err
	}
	d := acl.Explain(user, *clientID, roles, name, access)
	verdict := "denied"
	if d.Allowed {
		verdict = "allowed"
	}
	fmt.Fprintf(stdout, "%s: %s\n", verdict, d.Reason)
	if d.Rule != nil {
		fmt.Fprintf(stdout, "rule: %s:%d: %s\n", *file, d.Rule.Line, d.Rule)
	}
	if !d.Allowed {
		return errDenied
	}
	return nil
}
