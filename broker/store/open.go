package store

// OpenDefault opens the default on-disk engine, Pebble (see OpenPebble and
// docs/persistence.md), in directory dir.
func OpenDefault(dir string, opts Options) (Store, error) { return OpenPebble(dir, opts) }
