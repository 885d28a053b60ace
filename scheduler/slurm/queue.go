package slurm

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// queueTTL is how long a queue picture is reused: however many people watch
// the dashboard, squeue and sinfo run at most once per queueTTL.
const queueTTL = 15 * time.Second

// Queue returns the cluster's queue by partition and state, and its nodes,
// from one squeue and one sinfo as the service account, cached for 15 s.
func (e *Executor) Queue(ctx context.Context) (scheduler.Queue, error) {
	e.queueMu.Lock()
	defer e.queueMu.Unlock() // one refresh at a time; the others wait for it
	if !e.queue.At.IsZero() && time.Since(e.queue.At) < queueTTL {
		return e.queue, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := e.run(ctx, e.cfg.ServiceAccount, "squeue", "squeue", "--noheader", "--all", "--format=%P|%T")
	if err != nil {
		return e.queue, err
	}
	counts := map[[2]string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		part, state, ok := strings.Cut(strings.TrimSpace(line), "|")
		if !ok {
			continue
		}
		counts[[2]string{part, state}]++
	}
	nodesOut, err := e.run(ctx, e.cfg.ServiceAccount, "sinfo", "sinfo", "--noheader", "--Node", "--format=%N|%T|%R")
	if err != nil {
		return e.queue, err
	}
	q, err := parseQueue(counts, nodesOut)
	if err != nil {
		return e.queue, err
	}
	e.queue = q
	return q, nil
}

func parseQueue(counts map[[2]string]int, sinfo []byte) (scheduler.Queue, error) {
	q := scheduler.Queue{At: time.Now()}
	for k, n := range counts {
		q.Counts = append(q.Counts, scheduler.QueueCount{Partition: k[0], State: k[1], Count: n})
	}
	sort.Slice(q.Counts, func(i, j int) bool {
		a, b := q.Counts[i], q.Counts[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.State < b.State
	})
	nodes := map[string]*scheduler.NodeState{}
	var names []string
	for _, line := range strings.Split(string(sinfo), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 3 {
			return q, fmt.Errorf("sinfo: %d fields in %q, want 3", len(f), line)
		}
		if n, ok := nodes[f[0]]; ok {
			n.Partitions += "," + f[2]
			continue
		}
		nodes[f[0]] = &scheduler.NodeState{Name: f[0], State: f[1], Partitions: f[2]}
		names = append(names, f[0])
	}
	for _, name := range names {
		q.Nodes = append(q.Nodes, *nodes[name])
	}
	return q, nil
}
