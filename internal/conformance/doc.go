// Package conformance holds the check that keeps docs/conformance.md in
// step with the MQTT 5.0 normative statements and with the test suite: every
// statement ID appears once, with a status, and every test it names exists.
package conformance
