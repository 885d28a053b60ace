package web

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wesgate/wesgate/views"
	"github.com/wesgate/wesgate/wes"
)

// dashboardView turns the service's dashboard into its view model.
func dashboardView(d *wes.Dashboard) views.DashboardView {
	v := views.DashboardView{Scheduler: d.Scheduler, QueueErr: d.QueueErr, QueueAt: fmtTime(d.Queue.At)}
	byPart := map[string]*views.PartitionRow{}
	var parts []string
	for _, c := range d.Queue.Counts {
		row, ok := byPart[c.Partition]
		if !ok {
			row = &views.PartitionRow{Partition: c.Partition}
			byPart[c.Partition] = row
			parts = append(parts, c.Partition)
		}
		row.States = append(row.States, views.KV{Key: c.State, Value: strconv.Itoa(c.Count)})
		row.Total += c.Count
	}
	sort.Strings(parts)
	for _, p := range parts {
		v.Partitions = append(v.Partitions, *byPart[p])
	}
	for _, n := range d.Queue.Nodes {
		v.Nodes = append(v.Nodes, views.NodeRow{Name: n.Name, State: n.State, Partitions: n.Partitions})
	}
	for _, st := range wes.States {
		if n := d.Counts[st]; n > 0 {
			v.Counts = append(v.Counts, views.KV{Key: string(st), Value: strconv.FormatInt(n, 10)})
		}
	}
	for _, u := range d.Users {
		var active, failed int64
		for st, n := range u.States {
			switch {
			case !st.Terminal():
				active += n
			case st == wes.ExecutorError || st == wes.SystemError:
				failed += n
			}
		}
		v.Users = append(v.Users, views.UserRow{User: u.Username, Total: strconv.FormatInt(u.Total, 10),
			Active: strconv.FormatInt(active, 10), Failed: strconv.FormatInt(failed, 10)})
	}
	for _, r := range d.Failures {
		reason := ""
		if n := len(r.SystemLogs); n > 0 {
			reason = r.SystemLogs[n-1]
		}
		v.Failures = append(v.Failures, views.FailureRow{ID: r.ID, Name: r.Name, User: r.Username,
			State: string(r.State), Ended: fmtTime(r.Ended), Reason: reason})
	}
	for _, h := range d.Connections {
		row := views.ConnRow{Account: "ssh " + h.Account, Status: "connected", LastOK: fmtTime(h.LastOK), Problem: h.LastError}
		if !h.Connected {
			row.Status = "not connected"
		}
		if h.HostKey {
			row.Status, row.Bad = "HOST KEY MISMATCH", true
		} else if h.LastError != "" {
			row.Bad = true
		}
		v.Connections = append(v.Connections, row)
	}
	for _, p := range d.Polls {
		row := views.ConnRow{Account: "poll " + p.Account, Status: "ok", LastOK: fmtTime(p.LastOK)}
		if p.LastErr.After(p.LastOK) {
			row.Status, row.Problem, row.Bad = "failing", p.Err, true
		}
		v.Connections = append(v.Connections, row)
	}
	sort.Slice(v.Connections, func(i, j int) bool { return v.Connections[i].Account < v.Connections[j].Account })
	v.Chart = drawChart(d.Samples, time.Now())
	return v
}

// drawChart lays out the samples of the last 24 hours as two polylines.
func drawChart(samples []wes.Sample, now time.Time) views.Chart {
	c := views.Chart{Width: 720, Height: 220}
	if len(samples) == 0 {
		c.Empty = true
		return c
	}
	start := now.Add(-24 * time.Hour)
	ymax := 1
	for _, s := range samples {
		ymax = max(ymax, s.Pending, s.Running)
	}
	left, right, top, bottom := 40.0, float64(c.Width-10), 10.0, float64(c.Height-30)
	x := func(t time.Time) float64 {
		return left + (right-left)*float64(t.Sub(start))/float64(24*time.Hour)
	}
	y := func(n int) float64 { return bottom - (bottom-top)*float64(n)/float64(ymax) }
	var pend, run []string
	for _, s := range samples {
		pend = append(pend, fmt.Sprintf("%.1f,%.1f", x(s.At), y(s.Pending)))
		run = append(run, fmt.Sprintf("%.1f,%.1f", x(s.At), y(s.Running)))
	}
	c.Pending, c.Running = strings.Join(pend, " "), strings.Join(run, " ")
	c.YMax = strconv.Itoa(ymax)
	c.XStart, c.XEnd = start.UTC().Format("Jan 2 15:04"), now.UTC().Format("Jan 2 15:04 UTC")
	return c
}
