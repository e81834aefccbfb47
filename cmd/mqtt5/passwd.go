package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/mqtt5go/mqtt5/broker/auth"
	"github.com/mqtt5go/mqtt5/packet"
)

const passwdSynopsis = `passwd [-c] [-b] [-D] [flags] FILE USER [PASSWORD]

Adds USER to the password file FILE (used by "mqtt5 broker --password-file")
or changes USER's password, storing an Argon2id hash. Comments and other
users' lines are kept. The file is replaced atomically and has mode 0600.

  mqtt5 passwd FILE USER             prompt for the password (twice, without echo)
  mqtt5 passwd -b FILE USER PASSWORD take the password from the command line
  mqtt5 passwd -c FILE USER          create FILE (or overwrite it) with USER only
  mqtt5 passwd -D FILE USER          delete USER

When standard input is not a terminal, the password is the first line read
from it (without its line ending), with no confirmation, so that scripts can
pipe it in; this keeps it out of the process list, unlike -b.`

func runPasswd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("passwd", passwdSynopsis, stderr)
	create := fs.Bool("c", false, "create the file, overwriting any existing one")
	batch := fs.Bool("b", false, "take the password from the command line (visible to other local users in the process list)")
	del := fs.Bool("D", false, "delete the user")
	mem := fs.Uint("argon2-memory", uint(auth.DefaultArgon2Params.Memory), "Argon2id memory cost of the new hash in KiB")
	passes := fs.Uint("argon2-time", uint(auth.DefaultArgon2Params.Time), "Argon2id time cost (passes) of the new hash")
	threads := fs.Uint("argon2-threads", uint(auth.DefaultArgon2Params.Threads), "Argon2id parallelism (lanes) of the new hash")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	want := 2
	if *batch {
		want = 3
	}
	switch {
	case *del && (*create || *batch):
		return fmt.Errorf("%w: -D cannot be combined with -c or -b", errUsage)
	case fs.NArg() != want:
		if *batch {
			return fmt.Errorf("%w: want FILE USER PASSWORD with -b", errUsage)
		}
		return fmt.Errorf("%w: want FILE USER (pass -b to give the password on the command line)", errUsage)
	case *threads > 255 || *mem > 1<<32-1 || *passes > 1<<32-1:
		return fmt.Errorf("%w: Argon2id parameters out of range", errUsage)
	}
	file, user := fs.Arg(0), fs.Arg(1)
	if err := checkPasswdUser(user); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	var data []byte
	if !*create {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("password file %s does not exist (use -c to create it)", file)
			}
			return err
		}
	}
	entries, err := auth.ParsePasswordFile(data)
	if err != nil {
		return fmt.Errorf("password file %s: %w", file, err)
	}
	line := 0 // of user, 1-based
	for _, e := range entries {
		if e.Username == user {
			line = e.Line
		}
	}

	if *del {
		if line == 0 {
			return fmt.Errorf("user %q not found in %s", user, file)
		}
		return replaceFileAtomic(file, editLine(data, line, ""))
	}

	var password []byte
	if *batch {
		password = []byte(fs.Arg(2))
	} else if password, err = readNewPassword(ctx, stderr); err != nil {
		return err
	}
	if len(password) == 0 {
		return errors.New("empty password")
	}
	if !packet.ValidUTF8(password) {
		return errors.New("the password is not valid UTF-8 or contains U+0000")
	}
	params := auth.DefaultArgon2Params
	params.Memory, params.Time, params.Threads = uint32(*mem), uint32(*passes), uint8(*threads)
	hash, err := auth.HashPassword(password, params)
	if err != nil {
		return err
	}
	entry := user + ":" + hash + "\n"
	if line > 0 {
		data = editLine(data, line, entry)
	} else {
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		data = append(data, entry...)
	}
	return replaceFileAtomic(file, data)
}

// checkPasswdUser checks that user can be written in a password file.
func checkPasswdUser(user string) error {
	switch {
	case user == "":
		return errors.New("empty user name")
	case strings.ContainsAny(user, ":\r\n"):
		return fmt.Errorf("user name %q may not contain ':' or line breaks", user)
	case strings.TrimSpace(user) != user:
		return fmt.Errorf("user name %q may not start or end with white space", user)
	case user[0] == '#':
		return fmt.Errorf("user name %q may not start with '#'", user)
	case !packet.ValidUTF8String(user):
		return fmt.Errorf("user name %q is not valid UTF-8 or contains U+0000", user)
	}
	return nil
}

// editLine replaces the 1-based line n of data (with its line ending) by
// repl, which is "" to delete it.
func editLine(data []byte, n int, repl string) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	var out []byte
	for i, l := range lines {
		if i == n-1 {
			out = append(out, repl...)
			continue
		}
		out = append(out, l...)
	}
	return out
}

// readNewPassword prompts for a password twice without echo when standard
// input is a terminal, and otherwise reads one line.
func readNewPassword(ctx context.Context, prompt io.Writer) ([]byte, error) {
	in := stdinFrom(ctx)
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		fmt.Fprint(prompt, "Password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		fmt.Fprint(prompt, "Reenter password: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		if !bytes.Equal(p1, p2) {
			return nil, errors.New("passwords do not match")
		}
		return p1, nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no password on standard input")
		}
		return nil, fmt.Errorf("reading password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	return []byte(line), nil
}

// replaceFileAtomic replaces path (or the file its symbolic link points to)
// with data, mode 0600: it writes a temporary file in the same directory,
// syncs it and renames it over path, so that readers see the old or the new
// content, never a mix.
func replaceFileAtomic(path string, data []byte) error {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
