package web_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wesgate/wesgate/scheduler/slurm"
	"github.com/wesgate/wesgate/wes"
)

// puWhoami is a CWL tool that reports the account it ran as.
const puWhoami = `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [id, -un]
stdout: whoami.txt
inputs: []
outputs:
  who:
    type: stdout
`

// puScheduler is the Slurm executor in per-user mode, built as cmd/wesgate's
// newScheduler builds it: the service account logs in with its key, every
// other account with a short-lived certificate of the user CA.
func puScheduler(t testing.TB, lab *labEnv, log *slog.Logger) *slurm.Executor {
	t.Helper()
	b, err := os.ReadFile(lab.SvcKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := slurm.NewCertAuthority(lab.CAKey, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := slurm.NewPool(slurm.SSHConfig{Addr: lab.SSHAddr, KnownHosts: lab.KnownHosts,
		Credentials: func(account string) (slurm.Credentials, error) {
			if account == lab.SvcUser {
				return slurm.Credentials{User: lab.SvcUser, Signer: signer}, nil
			}
			return ca.Credentials(account)
		}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	exec, err := slurm.New(slurm.Config{Cluster: "lab", Base: lab.Base + "/{user}", DefaultPartition: lab.Partition,
		ServiceAccount: lab.SvcUser, PerUser: true}, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	return exec
}

// puSubmit submits puWhoami with the Authorization header.
func puSubmit(t testing.TB, env *auEnv, authorization string) string {
	t.Helper()
	parts := []e2ePart{
		{Name: "workflow_type", Value: "CWL"}, {Name: "workflow_type_version", Value: "v1.2"},
		{Name: "workflow_url", Value: "whoami.cwl"}, {Name: "workflow_params", Value: "{}"},
		{Name: "workflow_attachment", Filename: "whoami.cwl", Value: puWhoami},
	}
	body, ct := e2eMultipart(t, parts)
	resp, b := auDo(t, nil, http.MethodPost, env.API+"/runs", body, "Authorization", authorization, "Content-Type", ct)
	var id wes.RunStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &id) != nil || id.RunID == "" {
		t.Fatalf("POST /runs: %d %s", resp.StatusCode, b)
	}
	return id.RunID
}

// TestPerUserSlurm runs two people's workflows on the lab's Slurm in
// per-user mode: each job runs as that person's own account (sacct, the
// run directory's owner, and the workflow's own `id -un` agree), and
// neither person can see or cancel the other's run.
func TestPerUserSlurm(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	cwltool := wes.DefaultEngines()[0]
	if err := cwltool.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	var exec *slurm.Executor
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{cwltool}, PollInterval: 500 * time.Millisecond, GoneGrace: 5 * time.Second,
		Scheduler: func(t testing.TB, log *slog.Logger) wes.Scheduler {
			exec = puScheduler(t, lab, log)
			return exec
		}})

	people := []struct {
		account, authorization, run string
	}{
		{account: lab.User1, authorization: env.IdP.bearer(t, "sub-"+lab.User1, lab.User1)},
		{account: lab.User2, authorization: env.IdP.bearer(t, "sub-"+lab.User2, lab.User2)},
	}
	for i := range people {
		people[i].run = puSubmit(t, env, people[i].authorization)
	}
	for _, p := range people {
		auWait(t, env, p.authorization, p.run, 3*time.Minute, wes.Complete)
	}

	jobID := regexp.MustCompile(`^[0-9]+$`)
	for i, p := range people {
		stored, err := env.Service.GetRun(context.Background(), wes.User{Admin: true}, p.run)
		if err != nil {
			t.Fatal(err)
		}
		if !jobID.MatchString(stored.JobID) {
			t.Fatalf("%s's run has job id %q", p.account, stored.JobID)
		}
		if want := lab.Base + "/" + p.account + "/" + p.run; stored.RunDir != want {
			t.Errorf("%s's run directory is %s, want %s", p.account, stored.RunDir, want)
		}

		// Slurm's record: sacct first shows a stub owned by root for a job
		// that ended quickly (lab/README.md); the real record follows.
		// Other tests of the lab may be restarting its daemons: errors are
		// retried until the deadline.
		var owner string
		for end := time.Now().Add(time.Minute); ; {
			var out []byte
			out, err = exec.Pool().Run(context.Background(), lab.SvcUser,
				"sacct -j "+stored.JobID+" -X -n -P --format=User", nil)
			owner = strings.TrimSpace(string(out))
			if (err == nil && owner != "" && owner != "root") || time.Now().After(end) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil || owner != p.account {
			t.Errorf("job %s of %s's run belongs to %q in sacct (%v)", stored.JobID, p.account, owner, err)
		}

		// The run directory on the shared filesystem is the person's.
		if u, err := user.Lookup(p.account); err != nil {
			t.Error(err)
		} else if fi, err := os.Stat(stored.RunDir); err != nil {
			t.Error(err)
		} else if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != u.Uid {
			t.Errorf("%s is owned by uid %d, want %s (%s)", stored.RunDir, uid, u.Uid, p.account)
		}

		// And the workflow itself says who it ran as.
		resp, b := auDo(t, nil, http.MethodGet, env.API+"/runs/"+p.run+"/files/outputs/whoami.txt", nil, "Authorization", p.authorization)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != p.account {
			t.Errorf("%s's workflow ran as %q (%d)", p.account, b, resp.StatusCode)
		}

		// The other person sees nothing of it and cannot cancel it.
		other := people[1-i]
		for _, req := range []struct{ method, path string }{
			{http.MethodGet, "/runs/" + p.run},
			{http.MethodGet, "/runs/" + p.run + "/status"},
			{http.MethodGet, "/runs/" + p.run + "/stdout"},
			{http.MethodPost, "/runs/" + p.run + "/cancel"},
			{http.MethodDelete, "/runs/" + p.run},
		} {
			resp, b := auDo(t, nil, req.method, env.API+req.path, nil, "Authorization", other.authorization)
			auCheckError(t, other.account+": "+req.method+" "+req.path, resp, b, http.StatusNotFound)
		}
		resp, b = auDo(t, nil, http.MethodGet, env.API+"/runs", nil, "Authorization", other.authorization)
		var list wes.RunList
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list.Runs) != 1 || list.Runs[0].RunID != other.run {
			t.Errorf("%s lists %s, want only their own run %s", other.account, b, other.run)
		}
	}
}
