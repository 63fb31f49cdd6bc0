package resource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// DefaultNamespace is the namespace of an object that names none.
const DefaultNamespace = "default"

// typeMeta is the part of every document read before the kind is known.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// DecodeError is a document that could not be decoded.
type DecodeError struct {
	// Source names where the document came from (a file, "-", a request).
	Source string
	// Index is the document's position in a multi-document YAML stream,
	// from 0.
	Index int
	Err   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s: document %d: %v", e.Source, e.Index+1, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeYAML reads a stream of YAML (or JSON) documents separated by
// "---" lines. Empty documents are skipped. Each object is decoded
// strictly and defaulted, but not validated.
func DecodeYAML(source string, data []byte) ([]Object, error) {
	var out []Object
	for i, doc := range splitYAML(data) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, &DecodeError{Source: source, Index: i, Err: err}
		}
		o, err := DecodeJSON(js)
		if err != nil {
			return nil, &DecodeError{Source: source, Index: i, Err: err}
		}
		out = append(out, o)
	}
	return out, nil
}

// DecodeJSON decodes one JSON object strictly (unknown or duplicate fields
// are errors naming their path) and applies defaults.
func DecodeJSON(data []byte) (Object, error) {
	var tm typeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &tm); err != nil {
		return nil, fmt.Errorf("not a resource object: %w", err)
	}
	if tm.Kind == "" {
		return nil, errors.New("kind: Required value")
	}
	k, err := LookupKind(tm.Kind)
	if err != nil || k.Name != tm.Kind {
		return nil, fmt.Errorf("kind: Unsupported value: %q: supported kinds: %s", tm.Kind, kindNames())
	}
	if tm.APIVersion != k.APIVersion && !slices.Contains(k.alsoServed, tm.APIVersion) {
		return nil, fmt.Errorf("apiVersion: Unsupported value: %q: %s is served as %q", tm.APIVersion, k.Name, k.APIVersion)
	}
	o := k.New()
	strict, err := sigsjson.UnmarshalStrict(data, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.Name, err)
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%s: %s", k.Name, strings.Join(msgs, "; "))
	}
	Default(o)
	return o, nil
}

// Default fills in the defaults of an object in place.
func Default(o Object) {
	k, err := KindOf(o)
	if o.GetNamespace() == "" {
		if err == nil {
			o.SetNamespace(k.DefaultNamespace())
		} else {
			o.SetNamespace(DefaultNamespace)
		}
	}
	if err == nil {
		o.GetObjectKind().SetGroupVersionKind(gvk(k))
		k.setDefaults(o)
	}
}

func kindNames() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Name
	}
	return strings.Join(names, ", ")
}

// splitYAML splits a YAML stream on document separator lines.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	r := bytes.NewReader(data)
	for {
		line, err := readLine(r)
		if len(line) > 0 || err == nil {
			trimmed := bytes.TrimRight(line, " \t\r\n")
			if bytes.Equal(trimmed, []byte("---")) || bytes.HasPrefix(trimmed, []byte("--- ")) {
				docs = append(docs, append([]byte(nil), cur.Bytes()...))
				cur.Reset()
			} else {
				cur.Write(line)
			}
		}
		if err != nil {
			break
		}
	}
	docs = append(docs, cur.Bytes())
	return docs
}

func readLine(r *bytes.Reader) ([]byte, error) {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				return line, nil
			}
			return line, err
		}
		line = append(line, b)
		if b == '\n' {
			return line, nil
		}
	}
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
