// Command mqtt5 is the MQTT broker and its companion tools in one binary.
//
//	mqtt5 <command> [flags]
//
// Run "mqtt5 help" for the list of commands and "mqtt5 help <command>" for
// the flags of one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand of the binary.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// errUsage marks an error caused by bad command-line input; the binary exits
// with status 2 for it.
var errUsage = errors.New("usage error")

func commands() []command {
	return []command{
		{"broker", "run the MQTT broker", runBroker},
		{"pub", "publish a message (mosquitto_pub flags)", runPub},
		{"sub", "subscribe and print messages (mosquitto_sub flags)", runSub},
		{"rr", "MQTT 5 request/response: publish a request, print the response", runRR},
		{"bench", "benchmark a broker: throughput, latency, loss, idle connections", runBench},
		{"passwd", "manage a password file of Argon2id hashes (mosquitto_passwd form)", runPasswd},
		{"scram", "manage a SCRAM-SHA-256 credential file (mosquitto_passwd form)", runScram},
		{"acl", "check an access control list: which rule decides", runACL},
		{"version", "print the version, commit and Go version", runVersion},
		{"help", "show help for a command", nil},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the process exit status:
// 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] && c.run != nil {
					err := c.run(ctx, []string{"-help"}, stdout, stdout)
					if err != nil && !errors.Is(err, flag.ErrHelp) {
						fmt.Fprintln(stderr, "mqtt5:", err)
						return 1
					}
					return 0
				}
			}
			fmt.Fprintf(stderr, "mqtt5: unknown command %q\n", args[1])
			return 2
		}
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != name || c.run == nil {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintln(stderr, "mqtt5 "+name+":", err)
			return 2
		default:
			fmt.Fprintln(stderr, "mqtt5 "+name+":", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "mqtt5: unknown command %q (run \"mqtt5 help\")\n", name)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mqtt5 - MQTT 5.0 and 3.1.1 broker and tools")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: mqtt5 <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "mqtt5 help <command>" for the flags of a command.`)
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// prints its usage to w.
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: mqtt5 %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping parse failures to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
