package slurm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// option is one allowed sbatch option, with its strict format.
type option struct {
	scheduler.Option
	check func(string) error
}

func charset(allowed string, max int) func(string) error {
	return func(v string) error {
		if v == "" || len(v) > max {
			return fmt.Errorf("must have 1 to %d characters", max)
		}
		for _, r := range v {
			ok := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || strings.ContainsRune(allowed, r)
			if !ok {
				return fmt.Errorf("may contain only letters, digits and %s", allowed)
			}
		}
		return nil
	}
}

func digits(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// checkTime accepts Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S,
// and UNLIMITED or INFINITE.
func checkTime(v string) error {
	if v == "UNLIMITED" || v == "INFINITE" {
		return nil
	}
	bad := errors.New("must be minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
	rest := v
	if d, r, ok := strings.Cut(v, "-"); ok {
		if !digits(d) {
			return bad
		}
		rest = r
	}
	parts := strings.Split(rest, ":")
	if len(parts) > 3 {
		return bad
	}
	for _, p := range parts {
		if !digits(p) {
			return bad
		}
	}
	return nil
}

func checkMem(v string) error {
	num := strings.TrimRight(v, "KMGT")
	if len(v)-len(num) > 1 || !digits(num) {
		return errors.New("must be a whole number with an optional K, M, G or T suffix")
	}
	return nil
}

func checkCPUs(v string) error {
	n, err := strconv.Atoi(v)
	if !digits(v) || err != nil || n < 1 || n > 4096 { // digits: Atoi also takes "+4"
		return errors.New("must be a whole number from 1 to 4096")
	}
	return nil
}

// options are the sbatch options a run may set; nothing else passes.
// (--account is -A; "-a" would be --array.)
var options = []option{
	{scheduler.Option{Name: "--partition", Type: "string", Help: "Slurm partition"}, charset("_-.", 64)},
	{scheduler.Option{Name: "--time", Type: "string", Help: "time limit, e.g. 1-00:00:00"}, checkTime},
	{scheduler.Option{Name: "--cpus-per-task", Type: "int", Help: "CPUs for the engine"}, checkCPUs},
	{scheduler.Option{Name: "--mem", Type: "string", Help: "memory per node, e.g. 8G"}, checkMem},
	{scheduler.Option{Name: "--account", Type: "string", Help: "account to charge"}, charset("_-.", 64)},
	{scheduler.Option{Name: "--qos", Type: "string", Help: "quality of service"}, charset("_-.", 64)},
	{scheduler.Option{Name: "--gres", Type: "string", Help: "generic resources, e.g. gpu:1"}, charset("_-.:,", 128)},
	{scheduler.Option{Name: "--constraint", Type: "string", Help: "node features, e.g. intel&avx2"}, charset("_-.,&|", 128)},
}

// Options lists the sbatch options a run may set.
func (e *Executor) Options() []scheduler.Option {
	out := make([]scheduler.Option, len(options))
	for i, o := range options {
		out[i] = o.Option
		if o.Name == "--partition" {
			out[i].Default = e.cfg.DefaultPartition
		}
	}
	return out
}

// CheckOption checks one option value; a partition must be one the cluster
// has (from a cached sinfo; when the cluster cannot be asked and nothing is
// cached, sbatch decides).
func (e *Executor) CheckOption(ctx context.Context, name, value string) error {
	i := slices.IndexFunc(options, func(o option) bool { return o.Name == name })
	if i < 0 {
		return fmt.Errorf("is not a Slurm option wesgate passes on")
	}
	if err := options[i].check(value); err != nil {
		return err
	}
	if name == "--partition" {
		parts, err := e.partitions(ctx)
		if err != nil {
			e.log.Warn("slurm: sinfo for partition check", "err", err)
			return nil
		}
		if !slices.Contains(parts, value) {
			return fmt.Errorf("%q is not a partition of this cluster (partitions: %s)", value, strings.Join(parts, ", "))
		}
	}
	return nil
}

// Directives renders option values as sbatch options, in declared order,
// with the default partition when none is given.
func (e *Executor) Directives(values map[string]string) []string {
	var out []string
	for _, o := range options {
		v, ok := values[o.Name]
		if !ok && o.Name == "--partition" {
			v = e.cfg.DefaultPartition
		}
		if v == "" || o.check(v) != nil {
			continue
		}
		out = append(out, o.Name+"="+v)
	}
	return out
}

// Partitions returns the cluster's partitions (cached for a minute).
func (e *Executor) Partitions(ctx context.Context) ([]string, error) { return e.partitions(ctx) }

func (e *Executor) partitions(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	cached, at := e.partCache, e.partAt
	e.mu.Unlock()
	if cached != nil && time.Since(at) < time.Minute {
		return cached, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := e.run(ctx, e.cfg.ServiceAccount, "sinfo", "sinfo", "--noheader", "--format=%R")
	if err != nil {
		if cached != nil {
			return cached, nil // stale beats nothing while the cluster is away
		}
		return nil, err
	}
	var parts []string
	for _, line := range strings.Split(string(out), "\n") {
		if p := strings.TrimSpace(line); p != "" && !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	e.mu.Lock()
	e.partCache, e.partAt = parts, time.Now()
	e.mu.Unlock()
	return parts, nil
}
