package store

// OpenDefault opens the default on-disk engine in directory dir.
func OpenDefault(dir string, opts Options) (Store, error) { return OpenBolt(dir, opts) }
