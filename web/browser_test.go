package web_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wesgate/wesgate/wes"
)

// The browser test drives Debian's chromium, headless, through the pages a
// person uses: log in at the identity provider, submit a workflow with the
// form, follow it to the end, cancel another, and meet the 403 page. It
// runs real CWL workflows with cwltool under the local executor, and takes
// the screenshots that show what the pages look like.

// browserPath is Debian's chromium.
const browserPath = "/usr/bin/chromium"

// browserWait bounds every wait of the browser test.
const browserWait = 60 * time.Second

// browserHello is a CWL tool that greets; cwltool prints its output object
// (naming greeting.txt) on stdout.
const browserHello = `cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  message:
    type: string
    inputBinding: {position: 1}
stdout: greeting.txt
outputs:
  greeting: {type: stdout}
`

// requireChromium skips (or, with WESGATE_REQUIRE_LAB=1, fails) a test that
// needs Debian's chromium.
func requireChromium(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(browserPath); err != nil {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatalf("chromium is required (WESGATE_REQUIRE_LAB=1) but %s is missing: apt-get install chromium", browserPath)
		}
		t.Skipf("%s is missing; install Debian's chromium package to run the browser test", browserPath)
	}
}

// browserLog collects a writer's output for the test's failure report.
type browserLog struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *browserLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *browserLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// browser is one headless chromium for a test, and what its pages said.
type browser struct {
	t   testing.TB
	ctx context.Context // the first tab

	mu      sync.Mutex // guards console
	console []chromedp.ConsoleMessage
}

// newBrowser starts chromium with a fresh profile: chromedp makes a new
// user-data-dir in the temporary directory and removes it when the browser
// has exited.
func newBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	out := &browserLog{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browserPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Screenshots are as wide as the window: without this, a
		// scrollbar's width is cut off at the right.
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(width, height),
		chromedp.CombinedOutput(out),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium's output:\n%s", lastLines(out.String(), 40))
			b.mu.Lock()
			for _, m := range b.console {
				t.Logf("console: %s (%s:%d)", m, m.URL, m.Line)
			}
			b.mu.Unlock()
		}
	})
	b.open(ctx, cancel)
	return b
}

// open starts the browser or the tab of ctx and keeps its console messages.
// chromedp binds the browser and the tab to the context of their first
// action, so that action runs on ctx itself, and cancel stops it when it
// takes longer than browserWait.
func (b *browser) open(ctx context.Context, cancel context.CancelFunc) {
	b.t.Helper()
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			b.t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(browserWait):
		cancel()
		b.t.Fatalf("chromium did not start within %s", browserWait)
	}
	b.listen(ctx)
}

// listen keeps the console messages of the tab of ctx.
func (b *browser) listen(ctx context.Context) {
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
}

// problems are the console messages that mean a page is broken: uncaught
// exceptions and refusals by the Content-Security-Policy.
func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			out = append(out, m.String())
		}
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// do runs steps in the tab of ctx, within browserWait.
func (b *browser) do(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, b.pageText(ctx))
	}
}

// eval evaluates a JavaScript expression in the tab of ctx.
func browserEval[T any](b *browser, ctx context.Context, expr string) T {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// pageText is the text of the page in the tab of ctx, for failure reports.
func (b *browser) pageText(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// waitFor evaluates a boolean JavaScript expression until it is true, for
// at most browserWait. It survives navigations and reloads (chromedp's Poll
// does not): while the page is replaced, the expression counts as false.
func (b *browser) waitFor(ctx context.Context, what, expr string) {
	b.t.Helper()
	end := time.Now().Add(browserWait)
	var lastErr error
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(end) {
			b.t.Fatalf("waited %s for %s (last error: %v); page:\n%s", browserWait, what, lastErr, b.pageText(ctx))
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// screenshot saves a full-page PNG of the tab of ctx under dir, and also
// at the extra paths.
func (b *browser) screenshot(ctx context.Context, dir, name string, extra ...string) {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	for _, p := range append([]string{filepath.Join(dir, name)}, extra...) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot: %s", p)
	}
}

// screenshotDir is $WESGATE_TEST_OUTPUT, or test-output/screenshots in the
// repository (ignored by git).
func screenshotDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("WESGATE_TEST_OUTPUT"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(t), "test-output", "screenshots")
}

// repoRoot is the repository: the tests of package web run in web/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository is not at %s: %v", root, err)
	}
	return root
}

// browserWriteFile writes a file for the browser to upload.
func browserWriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var browserRunURL = regexp.MustCompile(`/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)

// submitRun fills in the submit form and submits it; it returns the id of
// the run whose page the browser lands on.
func (b *browser) submitRun(ctx context.Context, file, params, tags string, shot func()) string {
	b.t.Helper()
	b.do(ctx, "open the submit form",
		chromedp.Click(chromedp.CSS(`nav a[href="/runs/new"]`)),
		chromedp.WaitVisible(chromedp.ID("f-files")),
		chromedp.SetUploadFiles(chromedp.ID("f-files"), []string{file}),
		chromedp.SetValue(chromedp.ID("f-type"), "CWL|v1.2"),
		chromedp.SetValue(chromedp.ID("f-params"), params),
		chromedp.SetValue(chromedp.ID("f-tags"), tags),
	)
	if shot != nil {
		shot()
	}
	b.do(ctx, "submit", chromedp.Click(chromedp.CSS(`form.submit button[type=submit]`)))
	b.waitFor(ctx, "the new run's page", `/^\/runs\/[0-9a-f-]{36}$/.test(location.pathname) && document.getElementById("run")`)
	loc := browserEval[string](b, ctx, `location.pathname`)
	m := browserRunURL.FindStringSubmatch(loc)
	if m == nil {
		b.t.Fatalf("the submission landed on %s", loc)
	}
	return m[1]
}

// TestBrowser: a person logs in, submits a CWL workflow with the form,
// watches it complete with its output and stdout, cancels a second run,
// and is refused the dashboard; an admin sees the dashboard.
func TestBrowser(t *testing.T) {
	t.Parallel()
	requireChromium(t)
	requireCWLTool(t)
	serverLog := &browserLog{}
	m := uiStartMockOIDC(t)
	env := uiNewOIDCEnv(t, m, envOptions{Log: serverLog})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("wesgate's log:\n%s", lastLines(serverLog.String(), 60))
		}
	})
	shots := screenshotDir(t)
	files := t.TempDir()
	hello := browserWriteFile(t, files, "hello.cwl", browserHello)
	sleep := browserWriteFile(t, files, "sleep.cwl", e2eSleepTool)

	b := newBrowser(t, 1280, 900)
	ctx := b.ctx

	// Log in: the start page's "Log in" goes through the provider and back.
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-alice", PreferredUsername: "alice", Email: "alice@example.org", Groups: []string{"staff"}})
	b.do(ctx, "open the start page", chromedp.Navigate(env.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`header .who a.button`)))
	b.do(ctx, "click Log in", chromedp.Click(chromedp.CSS(`header .who a.button`)))
	b.waitFor(ctx, "the runs list after the login",
		`location.pathname === "/runs" && document.querySelector("h1").textContent === "Runs"`)
	if who := browserEval[string](b, ctx, `document.querySelector("header .who span").textContent`); who != "alice" {
		t.Errorf("logged in as %q, want alice", who)
	}

	// Submit a workflow with the form; the browser lands on its page.
	id := b.submitRun(ctx, hello, `{"message": "Hello from the browser"}`, "name=hello-browser\nproject=demo", func() {
		b.screenshot(ctx, shots, "submit-form.png")
	})
	initial := browserEval[string](b, ctx, `window.__wesgateLanded = true; document.getElementById("run").dataset.active`)
	if initial != "true" {
		t.Logf("run %s had ended before its page loaded: the live follow is not exercised", id)
	}

	// It completes; the page follows it and reloads with the outputs.
	b.waitFor(ctx, "COMPLETE with the outputs and stdout", `(() => {
		const run = document.getElementById("run"), badge = document.querySelector("#run-state .badge");
		return run.dataset.active === "false" && badge.textContent === "COMPLETE" &&
			document.getElementById("log-stdout").textContent.includes("greeting.txt") &&
			document.querySelector('section[aria-labelledby="h-out"] a[download]') !== null;
	})()`)
	if initial == "true" && browserEval[bool](b, ctx, `window.__wesgateLanded === true`) {
		t.Error("the page shows the end of the run but was not reloaded")
	}
	if out := browserEval[string](b, ctx, `document.querySelector('section[aria-labelledby="h-out"] a[download]').textContent`); out != "greeting (greeting.txt)" {
		t.Errorf("the output is named %q, want greeting (greeting.txt)", out)
	}
	if got := browserEval[string](b, ctx, `document.querySelector("h1").textContent`); got != "hello-browser" {
		t.Errorf("the run page is headed %q", got)
	}
	b.screenshot(ctx, shots, "run-page.png", func() []string {
		if os.Getenv("WESGATE_UPDATE_SCREENSHOTS") == "1" {
			return []string{filepath.Join(repoRoot(t), "docs", "run-page.png")}
		}
		return nil
	}()...)
	// The same page on a phone, in a tab of its own: nothing may stick out
	// to the side, and wide tables scroll inside their box.
	phone, closePhone := chromedp.NewContext(ctx)
	b.open(phone, closePhone)
	b.do(phone, "open the run page on a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(env.URL+"/runs/"+id), chromedp.WaitVisible(chromedp.ID("run")))
	if w := browserEval[float64](b, phone, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("on a 390 px wide screen the run page is %v px wide", w)
	}
	if wide := browserEval[[]string](b, phone, `Array.from(document.querySelectorAll(".table-wrap")).
		filter(w => w.scrollWidth > w.clientWidth).map(w => w.closest("section").querySelector("h2").textContent)`); len(wide) > 0 {
		t.Errorf("on a 390 px wide screen these tables must be scrolled sideways: %q", wide)
	}
	b.screenshot(phone, shots, "run-page-mobile.png")
	closePhone()

	// A second, long run: its page follows its log live, and it is cancelled.
	sleepID := b.submitRun(ctx, sleep, `{}`, "name=long-sleep", nil)
	started := browserEval[string](b, ctx, `window.__wesgateLanded = true; document.getElementById("log-stderr").textContent`)
	b.waitFor(ctx, "RUNNING, with the tool's output followed live", `
		document.querySelector("#run-state .badge").textContent === "RUNNING" &&
		document.getElementById("log-stderr").textContent.includes("sleeping-now")`)
	if !strings.Contains(started, "sleeping-now") && !browserEval[bool](b, ctx, `window.__wesgateLanded === true`) {
		t.Error("the page was reloaded to show the running run's log, instead of following it")
	}
	// cwltool colours its log; the page shows it without the codes.
	if log := browserEval[string](b, ctx, `document.getElementById("log-stderr").textContent`); strings.Contains(log, "\x1b") || !strings.Contains(log, "INFO ") {
		t.Errorf("the followed stderr shows terminal codes, or not cwltool's log:\n%q", log)
	}

	// Meanwhile an admin, in a browser context of their own, sees it on the
	// dashboard, with a day of queue samples.
	now := time.Now().UTC()
	for i := 48; i > 0; i-- {
		x := float64(i)
		s := wes.Sample{At: now.Add(-time.Duration(i) * 30 * time.Minute),
			Pending: int(6 + 5*math.Sin(x/5)), Running: int(4 + 3*math.Cos(x/7))}
		if err := env.DB.AddSample(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	admin, cancelAdmin := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	b.open(admin, cancelAdmin)
	m.QueueUser(&mockoidc.MockUser{Subject: "sub-dana", PreferredUsername: "dana", Groups: []string{uiAdminGroup}})
	b.do(admin, "log in as an admin", chromedp.Navigate(env.URL+"/auth/login?next=%2Fadmin"))
	b.waitFor(admin, "the dashboard with the running job and the chart", `location.pathname === "/admin" &&
		document.querySelector("h1").textContent === "Dashboard" &&
		document.querySelector('section[aria-labelledby="h-queue"] td .pill') !== null &&
		document.querySelector("figure.chart svg polyline") !== null`)
	if q := browserEval[string](b, admin, `document.querySelector('section[aria-labelledby="h-queue"] tbody').innerText`); !strings.Contains(q, "RUNNING 1") {
		t.Errorf("the dashboard's queue shows %q, want the running job", q)
	}
	b.screenshot(admin, shots, "dashboard.png")
	cancelAdmin()

	// Back in the first tab, the person cancels the long run.
	b.do(ctx, "click Cancel run…", chromedp.Click(chromedp.CSS(`a.button.danger`)))
	b.waitFor(ctx, "the confirm page", `location.pathname.endsWith("/cancel") && document.querySelector("h1").textContent === "Cancel long-sleep?"`)
	b.do(ctx, "confirm", chromedp.Click(chromedp.CSS(`form button.danger`)))
	b.waitFor(ctx, "CANCELED", `location.pathname === "/runs/`+sleepID+`" &&
		document.getElementById("run").dataset.active === "false" &&
		document.querySelector("#run-state .badge").textContent === "CANCELED" &&
		document.querySelector('a[href$="/cancel"]') === null`)
	if st, err := env.Service.GetStatus(context.Background(), wes.User{Admin: true}, sleepID); err != nil || st.State != wes.Canceled {
		t.Errorf("the service has the run as %v (%v)", st, err)
	}

	// The runs list shows both.
	b.do(ctx, "open the runs list", chromedp.Click(chromedp.CSS(`nav a[href="/runs"]`)), chromedp.WaitVisible(chromedp.CSS(`table.runs`)))
	rows := browserEval[[]string](b, ctx, `Array.from(document.querySelectorAll("table.runs tbody tr")).map(tr => tr.cells[0].innerText + " " + tr.cells[1].innerText.split("\n")[0])`)
	if want := []string{"CANCELED long-sleep", "COMPLETE hello-browser"}; !slices.Equal(rows, want) {
		t.Errorf("the runs list shows %q, want %q", rows, want)
	}
	b.screenshot(ctx, shots, "runs-list.png")

	// The dashboard is for admins: this person gets the 403 page.
	status, err := func() (int64, error) {
		c, cancel := context.WithTimeout(ctx, browserWait)
		defer cancel()
		r, err := chromedp.Run(c, chromedp.NavigateResponse(env.URL+"/admin"))
		if err != nil {
			return 0, err
		}
		return r.Status, nil
	}()
	if err != nil || status != 403 {
		t.Errorf("GET /admin as alice: %d (%v), want 403", status, err)
	}
	if h1 := browserEval[string](b, ctx, `document.querySelector("h1").textContent`); h1 != "Forbidden" {
		t.Errorf("the /admin page of a non-admin is headed %q, want Forbidden", h1)
	}

	if p := b.problems(); len(p) > 0 {
		t.Errorf("the pages reported problems:\n%s", strings.Join(p, "\n"))
	}
}
