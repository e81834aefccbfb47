package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// EnvPrefix starts the names of the environment variables the loader reads.
const EnvPrefix = "MQTT5_"

// EnvConfigFile names the configuration file when --config is not given.
const EnvConfigFile = EnvPrefix + "CONFIG"

// ErrInvalid is wrapped by every error about the configuration's content.
var ErrInvalid = errors.New("invalid configuration")

// Parse reads a configuration from data over the defaults. format is
// "json" or "toml". Unknown fields are errors naming them.
func Parse(data []byte, format string) (Config, error) {
	cfg := Default()
	switch format {
	case "json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("%w: %s", ErrInvalid, jsonError(data, err))
		}
		if dec.More() {
			return cfg, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
		}
	case "toml":
		md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&cfg)
		if err != nil {
			return cfg, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return cfg, fmt.Errorf("%w: unknown field %s", ErrInvalid, strings.Join(keys, ", "))
		}
	default:
		return cfg, fmt.Errorf("%w: unknown format %q (json or toml)", ErrInvalid, format)
	}
	return cfg, nil
}

// jsonError words a JSON decoding error with the field or line it is about.
func jsonError(data []byte, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return fmt.Sprintf("line %d: %v", line, err)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(msg, "json: ")
}

// LoadFile reads a configuration file over the defaults; its extension
// (.json, .toml) chooses the format.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Default(), err
	}
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "json" && format != "toml" {
		return Default(), fmt.Errorf("%w: %s: the file name must end in .json or .toml", ErrInvalid, path)
	}
	cfg, err := Parse(data, format)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// field is one settable leaf of Config.
type field struct {
	path string // file key path, e.g. storage.data_dir
	flag string // flag name, "" for none
	v    reflect.Value
	typ  reflect.StructField
}

// EnvName is the environment variable of a field path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// fields lists the leaves of *cfg in declaration order.
func fields(cfg *Config) []field {
	var out []field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			path := prefix + name
			fv := v.Field(i)
			if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[Duration]() {
				walk(fv, path+".")
				continue
			}
			if sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.Struct {
				continue // lists of tables (bridges): file only, see ListPaths
			}
			out = append(out, field{path: path, flag: sf.Tag.Get("flag"), v: fv, typ: sf})
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return out
}

// Paths returns the key path of every field, in declaration order.
func Paths() []string {
	var cfg Config
	fs := fields(&cfg)
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.path
	}
	return out
}

// ListPaths returns the key paths of the fields of list entries, such as
// bridges[].url: these are set in the file only.
func ListPaths() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			switch {
			case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.Struct:
				walk(sf.Type.Elem(), prefix+name+"[].")
			case sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[Duration]():
				walk(sf.Type, prefix+name+".")
			default:
				if strings.Contains(prefix, "[]") {
					out = append(out, prefix+name)
				}
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// set parses s into the field; lists take a comma-separated value when
// split is true and one element (appended) otherwise.
func (f field) set(s string, split bool) error {
	if u, ok := f.v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch f.v.Kind() {
	case reflect.String:
		f.v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		f.v.SetBool(b)
	case reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		f.v.SetFloat(n)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		f.v.SetInt(n)
	case reflect.Slice:
		if !split {
			f.v.Set(reflect.Append(f.v, reflect.ValueOf(s)))
			return nil
		}
		var list []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		f.v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported field type %s", f.v.Type())
	}
	return nil
}

// ApplyEnv sets fields from MQTT5_* variables of environ ("KEY=value"
// entries, as os.Environ returns). A variable with the prefix that names no
// field is an error, so that a typo does not go unnoticed. MQTT5_CONFIG
// (the file) is not a field.
func ApplyEnv(cfg *Config, environ []string) error {
	byEnv := map[string]field{}
	for _, f := range fields(cfg) {
		byEnv[EnvName(f.path)] = f
	}
	var errs []error
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) || k == EnvConfigFile {
			continue
		}
		f, ok := byEnv[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: environment variable %s names no setting", ErrInvalid, k))
			continue
		}
		if err := f.set(v, true); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s (%s): %v", ErrInvalid, k, f.path, err))
		}
	}
	return errors.Join(errs...)
}

// flagValue sets one field from a flag; a list flag replaces the list of
// the file and environment at its first use and appends after that.
type flagValue struct {
	f       field
	started bool
}

func (v *flagValue) String() string {
	if !v.f.v.IsValid() {
		return ""
	}
	if m, ok := v.f.v.Interface().(encoding.TextMarshaler); ok {
		b, _ := m.MarshalText()
		return string(b)
	}
	if v.f.v.Kind() == reflect.Slice {
		return strings.Join(v.f.v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.f.v.Interface())
}

func (v *flagValue) Set(s string) error {
	if v.f.v.Kind() == reflect.Slice && !v.started {
		v.f.v.Set(reflect.Zero(v.f.v.Type()))
		v.started = true
	}
	return v.f.set(s, false)
}

func (v *flagValue) IsBoolFlag() bool { return v.f.v.Kind() == reflect.Bool }

// BindFlags defines on fs a flag for every field that has one, setting
// *cfg. help gives each flag's usage text by name; flags without an entry
// get the field path.
func BindFlags(fs *flag.FlagSet, cfg *Config, help map[string]string) {
	for _, f := range fields(cfg) {
		if f.flag == "" {
			continue
		}
		usage := help[f.flag]
		if usage == "" {
			usage = "sets " + f.path
		}
		fs.Var(&flagValue{f: f}, f.flag, usage)
	}
}

// Flags maps every flag name to its field path.
func Flags() map[string]string {
	var cfg Config
	m := map[string]string{}
	for _, f := range fields(&cfg) {
		if f.flag != "" {
			m[f.flag] = f.path
		}
	}
	return m
}

// Generate encodes the default configuration as "json" or "toml": every
// field with its default value, a starting point for a file.
func Generate(format string) ([]byte, error) {
	cfg := Default()
	switch format {
	case "json":
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	case "toml":
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("unknown format %q (json or toml)", format)
}

// oneOf reports whether s is one of the allowed values.
func oneOf(s string, allowed ...string) bool { return slices.Contains(allowed, s) }
