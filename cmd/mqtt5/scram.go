package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/mqtt5go/mqtt5/broker/auth"
)

const scramSynopsis = "scram [-c] [-b] [-D] [-i ITERATIONS] FILE USER [PASSWORD]"

const scramFooter = `
Manages a SCRAM-SHA-256 credential file (lines of
username:salt:iterations:stored_key:server_key) for the broker's
SCRAM-SHA-256 enhanced authentication. Adds USER or updates its password;
-D deletes it. Without -b the password is read from the terminal (twice,
not echoed) or, when stdin is not a terminal, from its first line.
The file is replaced atomically and written with mode 0600; comments and
other users' lines are kept.

Examples:
  mqtt5 scram -c creds.txt alice          create the file with user alice
  mqtt5 scram -b creds.txt bob s3cret     add or update bob
  mqtt5 scram -D creds.txt bob            delete bob
`

// scramReadPassword prompts on stderr and reads a password without echo;
// scramInteractive reports whether it reads from a terminal (and the
// password is then asked twice).
var (
	scramReadPassword = scramReadStdin
	scramInteractive  = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }
)

var (
	scramStdinOnce sync.Once
	scramStdin     *bufio.Reader
)

func scramReadStdin(prompt string, stderr io.Writer) (string, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		return string(b), err
	}
	scramStdinOnce.Do(func() { scramStdin = bufio.NewReader(os.Stdin) })
	line, err := scramStdin.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on stdin")
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// runScram creates, updates or deletes entries of a SCRAM credential file.
func runScram(_ context.Context, args []string, _, stderr io.Writer) error {
	flags := newFlagSet("scram", scramSynopsis, stderr)
	usage := flags.Usage
	flags.Usage = func() { usage(); fmt.Fprint(stderr, scramFooter) }
	create := flags.Bool("c", false, "create a new file, replacing an existing one")
	batch := flags.Bool("b", false, "batch mode: take the password from the command line")
	del := flags.Bool("D", false, "delete USER")
	iters := flags.Int("i", auth.DefaultSCRAMIterations, fmt.Sprintf("PBKDF2 iteration count (minimum %d)", auth.MinSCRAMIterations))
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	pos := flags.Args()
	switch {
	case *del && (*create || *batch):
		return fmt.Errorf("%w: -D cannot be combined with -c or -b", errUsage)
	case *del && len(pos) != 2, !*del && *batch && len(pos) != 3, !*del && !*batch && len(pos) != 2:
		return fmt.Errorf("%w: wrong number of arguments (usage: mqtt5 %s)", errUsage, scramSynopsis)
	case *iters < auth.MinSCRAMIterations:
		return fmt.Errorf("%w: -i %d is below the minimum of %d iterations", errUsage, *iters, auth.MinSCRAMIterations)
	}
	file, user := pos[0], pos[1]

	var lines []string
	if !*create {
		b, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist (use -c to create it)", file)
		}
		if err != nil {
			return err
		}
		if len(b) > 0 {
			lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		}
	}
	users := make([]string, len(lines)) // user name of each credential line
	for i, l := range lines {
		if auth.IsSCRAMComment(l) {
			continue
		}
		c, err := auth.ParseSCRAMCredential(l)
		if err != nil {
			return fmt.Errorf("%s: line %d: %v", file, i+1, err)
		}
		users[i] = c.Username
	}

	if *del {
		at := slices.Index(users, user)
		if at < 0 || user == "" {
			return fmt.Errorf("user %q not found in %s", user, file)
		}
		return scramWriteFile(file, slices.Delete(lines, at, at+1))
	}

	var password string
	if *batch {
		password = pos[2]
	} else {
		p1, err := scramReadPassword("Password: ", stderr)
		if err != nil {
			return err
		}
		if scramInteractive() {
			p2, err := scramReadPassword("Reenter password: ", stderr)
			if err != nil {
				return err
			}
			if p1 != p2 {
				return errors.New("passwords do not match")
			}
		}
		password = p1
	}
	if password == "" {
		return errors.New("empty password")
	}
	cred, err := auth.NewSCRAMCredential(user, password, *iters)
	if err != nil {
		return err
	}
	if at := slices.Index(users, cred.Username); at >= 0 {
		lines[at] = cred.String()
	} else {
		lines = append(lines, cred.String())
	}
	return scramWriteFile(file, lines)
}

// scramWriteFile replaces path with lines (mode 0600): a temporary file
// in the same directory, synced, then renamed over path.
func scramWriteFile(path string, lines []string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	w := bufio.NewWriter(tmp)
	for _, l := range lines {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
