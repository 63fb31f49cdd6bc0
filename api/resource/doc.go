// Package resource is the edge where user configuration enters Weft: it
// knows the resource kinds, decodes YAML or JSON documents into their typed
// form (strictly: an unknown field is an error), fills in defaults, and
// validates each object, reporting every problem with its field path.
//
// The control plane validates every apply with it; the CLI uses it to read
// files. Nothing here is safe to share mutably: Decode returns fresh values.
package resource
