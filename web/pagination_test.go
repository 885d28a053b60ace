package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/wes"
)

// pgCreate creates a run through the service, as the API does.
func pgCreate(t testing.TB, env *testEnv, u wes.User, n int) string {
	t.Helper()
	d, err := env.Service.NewDraft()
	if err != nil {
		t.Error(err)
		return ""
	}
	for _, p := range biRun("workflow_attachment", "tags") {
		d.SetField(p.name, p.value)
	}
	d.SetField("tags", fmt.Sprintf(`{"n": "%d"}`, n))
	if err := d.AddAttachment("wf.cwl", strings.NewReader("cwlVersion: v1.2\n")); err != nil {
		t.Error(err)
		return ""
	}
	id, err := env.Service.CreateRun(context.Background(), u, d)
	if err != nil {
		t.Error(err)
		return ""
	}
	return id
}

// pgPage fetches one page of GET /runs.
func pgPage(t testing.TB, env *testEnv, query url.Values) ([]wes.RunSummary, string) {
	t.Helper()
	resp, body := biGet(t, env.API+"/runs?"+query.Encode())
	var page biRunList
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &page) != nil {
		t.Fatalf("GET /runs?%s: %d %s", query.Encode(), resp.StatusCode, body)
	}
	if page.NextPageToken == nil {
		t.Fatalf("GET /runs?%s: no next_page_token field: %s", query.Encode(), body)
	}
	return page.Runs, *page.NextPageToken
}

func TestListRunsPagination(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)}, MaxJobs: 4})
	local, err := auth.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	u := local.User
	ctx := context.Background()

	// 250 runs before paging starts.
	const before = 250
	original := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				n := int(next.Add(1))
				if n > before {
					return
				}
				if id := pgCreate(t, env, u, n); id != "" {
					mu.Lock()
					original[id] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(original) != before {
		t.Fatalf("created %d runs, want %d", len(original), before)
	}

	// 60 more while a client pages through the list: between two pages
	// the creator makes progress, so runs appear mid-listing.
	const during = 60
	var created atomic.Int64
	progress := make(chan struct{}, during)
	var creator sync.WaitGroup
	creator.Go(func() {
		for i := range during {
			pgCreate(t, env, u, before+1+i)
			created.Add(1)
			progress <- struct{}{}
		}
	})
	defer creator.Wait() // also when the test stops early
	var listed []wes.RunSummary
	token := ""
	pages := 0
	for {
		q := url.Values{"page_size": {"100"}}
		if token != "" {
			q.Set("page_token", token)
		}
		page, nextToken := pgPage(t, env, q)
		pages++
		listed = append(listed, page...)
		if nextToken == "" {
			break
		}
		if len(page) != 100 {
			t.Errorf("page %d has %d runs and a next page, want 100", pages, len(page))
		}
		token = nextToken
		// Let the creator add about 15 runs before the next page.
		for range 15 {
			select {
			case <-progress:
			case <-time.After(30 * time.Second):
				t.Fatal("the creator is stuck")
			}
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	creator.Wait()
	if created.Load() != during {
		t.Fatalf("created %d runs while paging, want %d", created.Load(), during)
	}
	if pages < 3 {
		t.Errorf("%d pages for at least %d runs of 100", pages, before)
	}

	// No run twice, none of the first 250 missing, newest first.
	seen := map[string]bool{}
	var seqs []int64
	for _, r := range listed {
		if seen[r.RunID] {
			t.Errorf("run %s listed twice", r.RunID)
		}
		seen[r.RunID] = true
		run, err := env.DB.GetRun(ctx, r.RunID, "")
		if err != nil {
			t.Fatalf("listed run %s: %v", r.RunID, err)
		}
		seqs = append(seqs, run.Seq)
	}
	for id := range original {
		if !seen[id] {
			t.Errorf("run %s, created before paging began, was not listed", id)
		}
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] >= seqs[i-1] {
			t.Fatalf("listed out of order at %d: seq %d after %d", i, seqs[i], seqs[i-1])
		}
	}
	// The listing is exactly the runs that existed when it began: nothing
	// skipped in between, and no run created later slipped in.
	all, err := env.DB.ListRuns(ctx, wes.ListQuery{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range all {
		if r.Seq <= seqs[0] {
			want = append(want, r.ID)
		}
	}
	if len(want) != len(listed) {
		t.Errorf("listed %d runs, but %d existed when the listing began", len(listed), len(want))
	}
	for i := range min(len(want), len(listed)) {
		if want[i] != listed[i].RunID {
			t.Fatalf("position %d: listed %s, want %s", i, listed[i].RunID, want[i])
		}
	}
	if len(all) != before+during {
		t.Errorf("%d runs stored, want %d", len(all), before+during)
	}

	// A fresh listing starts at the newest run.
	page, _ := pgPage(t, env, url.Values{"page_size": {"1"}})
	if len(page) != 1 || page[0].RunID != all[0].ID {
		t.Errorf("first run of a new listing %v, want the newest %s", page, all[0].ID)
	}

	// A token belongs to its query: another state or tag filter is refused.
	_, first := pgPage(t, env, url.Values{"page_size": {"10"}})
	for _, q := range []url.Values{
		{"page_size": {"10"}, "page_token": {first}, "state": {"COMPLETE"}},
		{"page_size": {"10"}, "page_token": {first}, "state": {"QUEUED,RUNNING"}},
		{"page_size": {"10"}, "page_token": {first}, "tag": {"n:1"}},
	} {
		resp, body := biGet(t, env.API+"/runs?"+q.Encode())
		biCheckError(t, resp, body, http.StatusBadRequest, "page_token")
	}
	// The page size may change between pages of the same query.
	if page, _ := pgPage(t, env, url.Values{"page_size": {"5"}, "page_token": {first}}); len(page) != 5 {
		t.Errorf("next page of 5 has %d runs", len(page))
	}

	// A filtered listing pages through only its runs.
	tagged, nextToken := pgPage(t, env, url.Values{"tag": {"n:7"}})
	if len(tagged) != 1 || tagged[0].Tags["n"] != "7" || nextToken != "" {
		t.Errorf("tag filter: %+v, next %q", tagged, nextToken)
	}
}

func TestListRunsPageSizeClamped(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)}})
	local, err := auth.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	// More runs than the largest page (1000). Finished runs, stored
	// directly: the monitor leaves them alone.
	ctx := context.Background()
	const total = 1005
	for i := range total {
		r := &wes.Run{
			ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Owner: local.User.Owner, Username: local.User.Username,
			State: wes.Complete, Name: "wf.cwl", Created: time.Now().UTC(), Outputs: json.RawMessage("{}"),
			Request: wes.RunRequest{WorkflowParams: json.RawMessage("{}"), WorkflowType: "CWL", WorkflowTypeVersion: "v1.2",
				Tags: map[string]string{}, WorkflowEngineParameters: map[string]string{}, WorkflowURL: "wf.cwl"},
		}
		if err := env.DB.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, size := range []string{"1001", "5000", "1099511627776"} {
		page, next := pgPage(t, env, url.Values{"page_size": {size}})
		if len(page) != 1000 || next == "" {
			t.Errorf("page_size=%s: %d runs, next %q; want the maximum of 1000 and a next page", size, len(page), next)
			continue
		}
		rest, last := pgPage(t, env, url.Values{"page_size": {size}, "page_token": {next}})
		if len(rest) != total-1000 || last != "" {
			t.Errorf("page_size=%s, second page: %d runs, next %q; want %d and none", size, len(rest), last, total-1000)
		}
	}
	// Without page_size, the default page.
	if page, next := pgPage(t, env, url.Values{}); len(page) != 50 || next == "" {
		t.Errorf("default page: %d runs, next %q; want 50 and a next page", len(page), next)
	}
}
