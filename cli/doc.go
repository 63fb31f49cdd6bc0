// Package cli is the `weft` command line (cobra): the control plane
// (`weft control`), resource verbs against its API (`apply`, `get`,
// `delete`), `weft run` (which hands over to weft-proxy), and `weft demo`.
package cli
