package authzserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// DefaultQuery is the decision evaluated for every Check.
const DefaultQuery = "data.weft.authz.allow"

// Policy is a compiled set of Rego modules and data documents, prepared for
// evaluation of one query. It is immutable and safe for concurrent use: the
// Server swaps whole Policies, never changes one.
type Policy struct {
	query    rego.PreparedEvalQuery
	queryStr string
	modules  []string // file names, sorted
	loaded   time.Time
}

// Modules lists the Rego files the policy was compiled from.
func (p *Policy) Modules() []string { return append([]string(nil), p.modules...) }

// compileOptions say how to load and compile a policy.
type compileOptions struct {
	paths       []string
	query       string
	regoVersion ast.RegoVersion
	print       print.Hook // nil: print() statements are dropped
}

// compile loads every .rego, .json and .yaml file under the paths (a
// directory's data files are mounted at data.DIR.SUBDIR… as OPA does) and
// prepares the query. An error means nothing usable was built.
func compile(ctx context.Context, o compileOptions) (*Policy, error) {
	res, err := loader.NewFileLoader().
		WithRegoVersion(o.regoVersion).
		WithProcessAnnotation(true).
		Filtered(o.paths, skipHidden)
	if err != nil {
		return nil, fmt.Errorf("authz: load policy: %w", err)
	}
	if len(res.Modules) == 0 {
		return nil, fmt.Errorf("authz: no .rego module under %s", strings.Join(o.paths, ", "))
	}
	store, err := res.Store()
	if err != nil {
		return nil, fmt.Errorf("authz: load data: %w", err)
	}
	opts := []func(*rego.Rego){
		rego.Query(o.query),
		rego.Store(store),
		rego.SetRegoVersion(o.regoVersion),
		rego.EnablePrintStatements(o.print != nil),
	}
	if o.print != nil {
		opts = append(opts, rego.PrintHook(o.print))
	}
	names := make([]string, 0, len(res.Modules))
	for _, m := range res.Modules {
		opts = append(opts, rego.ParsedModule(m.Parsed))
		names = append(names, m.Name)
	}
	sort.Strings(names)
	var compiler *ast.Compiler
	opts = append(opts, rego.CompilerHook(func(c *ast.Compiler) { compiler = c }))
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("authz: compile policy: %w", err)
	}
	if err := checkQueryDefined(o.query, compiler, res.Documents); err != nil {
		return nil, err
	}
	return &Policy{query: pq, queryStr: o.query, modules: names, loaded: time.Now()}, nil
}

// checkQueryDefined refuses a policy that defines nothing at the query's
// path (a renamed package, a typo in --query): it would deny everything,
// and refusing it keeps the last good policy serving instead.
func checkQueryDefined(query string, c *ast.Compiler, docs map[string]any) error {
	ref, err := ast.ParseRef(query)
	if err != nil || c == nil || !ref.HasPrefix(ast.DefaultRootRef) {
		return nil // a composite query: nothing simple to check
	}
	if len(c.GetRules(ref)) > 0 {
		return nil
	}
	// A base document (data file) may answer the query.
	var cur any = docs
	for _, t := range ref[1:] {
		m, ok := cur.(map[string]any)
		if !ok {
			break
		}
		s, ok := t.Value.(ast.String)
		if !ok {
			return nil
		}
		if cur, ok = m[string(s)]; !ok {
			return fmt.Errorf("authz: no rule or document defines %s (check the package name and --query)", query)
		}
	}
	return nil
}

// skipHidden keeps dot-files and dot-directories (.git, editor swap files)
// out of the policy.
func skipHidden(_ string, info fs.FileInfo, depth int) bool {
	return depth > 0 && strings.HasPrefix(info.Name(), ".")
}

// policyFile reports whether the loader would read a file found in a
// directory (it also reads any file named directly).
func policyFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".rego", ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// fingerprint summarises the name, size and modification time of every file
// the policy is loaded from, so a poll can tell whether anything changed
// without reading the files.
func fingerprint(paths []string) (string, error) {
	var lines []string
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return "", fmt.Errorf("authz: policy path: %w", err)
		}
		if !info.IsDir() {
			lines = append(lines, fileLine(root, info))
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !policyFile(d.Name()) {
				return nil
			}
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking: the next poll sees it
			}
			if err != nil {
				return err
			}
			lines = append(lines, fileLine(p, fi))
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("authz: policy path: %w", err)
		}
	}
	sort.Strings(lines)
	h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(h[:]), nil
}

func fileLine(p string, fi fs.FileInfo) string {
	return fmt.Sprintf("%s\x00%d\x00%d", p, fi.Size(), fi.ModTime().UnixNano())
}
