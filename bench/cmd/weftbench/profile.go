package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// profileRun runs the Weft HTTP path once more with weft-proxy-prof (the
// same sidecar wrapped in a CPU profile, and an allocation profile written
// at exit) and keeps pprof's top tables in RESULTS/profile/. Not part of
// the measured runs: profiling costs CPU.
func (e *env) profileRun(res *results, l, warm load) error {
	dir := filepath.Join(e.cfg.results, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw := filepath.Join(e.work, "profile")
	if err := os.MkdirAll(raw, 0o755); err != nil {
		return err
	}
	saved := e.weftProxy
	e.weftProxy, e.profileDir = e.cfg.weftProxyProf, raw
	defer func() { e.weftProxy, e.profileDir = saved, "" }()
	l.duration = e.cfg.profileDuration
	fmt.Printf("profile: Weft HTTP path for %s with weft-proxy-prof\n", l.duration)
	pr, err := e.startWeftPair("profile", "http://127.0.0.1:9001/")
	if err != nil {
		pr.stop()
		return err
	}
	if _, err := runFortio(e.cfg, warm, "http://127.0.0.1:9001/", filepath.Join(e.work, "profile-warmup.json")); err != nil {
		pr.stop()
		return err
	}
	fr, err := runFortio(e.cfg, l, "http://127.0.0.1:9001/", filepath.Join(e.work, "profile.json"))
	pr.stop() // SIGTERM: the wrapper writes its profiles
	if err != nil {
		return err
	}
	res.Profile = map[string]string{}
	for _, side := range []string{"client", "server"} {
		for _, kind := range []struct {
			name, file string
			args       []string
		}{
			{"cpu", "cpu", []string{"-top", "-nodecount=30"}},
			{"cpu_cum", "cpu", []string{"-top", "-cum", "-nodecount=40"}},
			{"alloc_space", "allocs", []string{"-top", "-sample_index=alloc_space", "-nodecount=25"}},
			{"alloc_objects", "allocs", []string{"-top", "-sample_index=alloc_objects", "-nodecount=25"}},
		} {
			prof := filepath.Join(raw, side+"."+kind.file+".pprof")
			args := append([]string{"tool", "pprof"}, kind.args...)
			out, err := exec.Command("go", append(args, prof)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("go tool pprof %s: %v\n%s", prof, err, out)
			}
			text := fmt.Sprintf("# %s proxy, %s, Weft HTTP path at %d qps for %s (%d requests)\n%s", side, kind.name, l.qps, l.duration,
				fr.DurationHistogram.Count, out)
			if err := os.WriteFile(filepath.Join(dir, side+"-"+kind.name+".txt"), []byte(text), 0o644); err != nil {
				return err
			}
			res.Profile[side+"_"+kind.name] = strings.Join(strings.SplitN(string(out), "\n", 16)[:min(15, strings.Count(string(out), "\n"))], "\n")
			_ = copyFile(prof, filepath.Join(dir, side+"."+kind.file+".pprof"))
		}
	}
	fmt.Printf("  profiles and pprof tops in %s\n", dir)
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
