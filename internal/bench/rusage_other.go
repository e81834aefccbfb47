//go:build !unix

package bench

import "time"

// selfCPU is not available on this platform.
func selfCPU() (user, sys time.Duration) { return 0, 0 }
