package wes

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		// Captured from Debian's cwltool 3.1.20230209161050 (cwltool --version).
		{"cwltool", "/usr/bin/cwltool 3.1.20230209161050\n", "3.1.20230209161050"},
		{"cwltool pip", "cwltool 3.1.20240508115724\n", "3.1.20240508115724"},
		{"snakemake", "7.32.4\n", "7.32.4"},
		{"miniwdl", "miniwdl v1.9.1\n", "1.9.1"},
		{"nextflow -version", "\n      N E X T F L O W\n      version 23.04.1 build 5866\n" +
			"      created 15-04-2023 15:07 UTC (17:07 CEST)\n      cite doi:10.1038/nbt.3820\n      http://nextflow.io\n\n", "23.04.1"},
		{"nextflow -v", "nextflow version 23.04.1.5866\n", "23.04.1.5866"},
		{"trailing punctuation", "toil version 5.12.0.\n", "5.12.0"},
		{"warning first", "WARNING: something is deprecated\nengine 2.0\n", "2.0"},
		{"bare number", "engine 8\n", "8"},
		{"crlf", "engine 1.2.3\r\n", "1.2.3"},
		{"nothing", "usage: engine [options]\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		if got := ParseVersion(tt.out); got != tt.want {
			t.Errorf("%s: ParseVersion = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDetect(t *testing.T) {
	e := Engine{Name: "echo", VersionCommand: []string{"/bin/echo", "echo-engine v2.5.1"}}
	if err := e.Detect(context.Background()); err != nil || e.Version != "2.5.1" {
		t.Errorf("Detect: version %q, %v", e.Version, err)
	}
	for _, cmd := range [][]string{nil, {"/nonexistent/engine", "--version"}, {"/bin/echo", "no version here"}, {"/bin/false"}} {
		e := Engine{Name: "x", VersionCommand: cmd}
		if err := e.Detect(context.Background()); err == nil || e.Version != "" {
			t.Errorf("Detect with %q: version %q, err %v; want an error", cmd, e.Version, err)
		}
	}
}

func TestNormalizeParam(t *testing.T) {
	one, ten := 1.0, 10.0
	boolP := EngineParam{Name: "--parallel", Type: ParamBool}
	intP := EngineParam{Name: "--cores", Type: ParamInt, Min: &one, Max: &ten}
	floatP := EngineParam{Name: "--ratio", Type: ParamFloat, Min: &one}
	strP := EngineParam{Name: "-profile", Type: ParamString}
	choiceP := EngineParam{Name: "--mode", Type: ParamString, Choices: []string{"fast", "safe"}}
	tests := []struct {
		p    EngineParam
		v    any
		want string
		err  string // a substring of the error, "" when accepted
	}{
		{boolP, true, "true", ""},
		{boolP, false, "false", ""},
		{boolP, "true", "true", ""},
		{boolP, "false", "false", ""},
		{boolP, "TRUE", "", "true or false"},
		{boolP, "1", "", "true or false"},
		{boolP, "yes", "", "true or false"},
		{boolP, 1.0, "", "true or false"},
		{boolP, nil, "", "true or false"},
		{boolP, map[string]any{}, "", "true or false"},

		{intP, 4.0, "4", ""},
		{intP, "4", "4", ""},
		{intP, " 7 ", "7", ""},
		{intP, 1.0, "1", ""},
		{intP, 10.0, "10", ""},
		{intP, 4.5, "", "whole number"},
		{intP, 0.0, "", "at least 1"},
		{intP, 11.0, "", "at most 10"},
		{intP, "four", "", "number"},
		{intP, "", "", "number"},
		{intP, "NaN", "", "finite"},
		{intP, "Inf", "", "finite"},
		{intP, "-Inf", "", "finite"},
		{intP, math.NaN(), "", "finite"},
		{intP, math.Inf(1), "", "finite"},
		{intP, true, "", "number"},
		{intP, []any{4.0}, "", "number"},
		{intP, "4; rm -rf ~", "", "number"},

		{floatP, 2.5, "2.5", ""},
		{floatP, "2.50", "2.5", ""},
		{floatP, 1e300, "1e+300", ""},
		{floatP, 0.5, "", "at least 1"},
		{floatP, "nan", "", "finite"},

		{strP, "standard", "standard", ""},
		{strP, "cluster,docker", "cluster,docker", ""},
		{strP, "a=b:c/d.e+f@g_h", "a=b:c/d.e+f@g_h", ""},
		{strP, "", "", "1 to 256"},
		{strP, strings.Repeat("x", 257), "", "1 to 256"},
		{strP, "two words", "", "letters, digits"},
		{strP, "$(id)", "", "letters, digits"},
		{strP, "a;b", "", "letters, digits"},
		{strP, "a\nb", "", "letters, digits"},
		{strP, "--resume", "", "not starting with -"}, // read as an option of the engine
		{strP, "-c", "", "not starting with -"},
		{strP, "ünï", "", "letters, digits"},
		{strP, 3.0, "", "string"},
		{strP, true, "", "string"},

		{choiceP, "fast", "fast", ""},
		{choiceP, "safe", "safe", ""},
		{choiceP, "Fast", "", "one of fast, safe"},
		{choiceP, "slow", "", "one of fast, safe"},

		{EngineParam{Name: "x", Type: "list"}, "a", "", "unknown type"},
	}
	for _, tt := range tests {
		got, err := normalizeParam(tt.p, tt.v)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("%s %#v: %q, %v; want %q", tt.p.Name, tt.v, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s %#v: %q, %v; want an error mentioning %q", tt.p.Name, tt.v, got, err, tt.err)
		}
	}
}

func engineByName(t *testing.T, name string) Engine {
	t.Helper()
	for _, e := range DefaultEngines() {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no engine %s", name)
	return Engine{}
}

func TestCommandLine(t *testing.T) {
	const runDir = "/data/runs/0b9a6a5e"
	tests := []struct {
		name     string
		engine   string
		workflow string
		values   map[string]string
		want     []string
	}{
		{"cwltool defaults", "cwltool", "wf.cwl", nil,
			[]string{"cwltool", "--outdir", runDir + "/outputs", "./wf.cwl", ".wesgate-params.json"}},
		{"cwltool flags in declared order", "cwltool", "dir/wf.cwl#main",
			map[string]string{"--debug": "true", "--parallel": "true", "--no-container": "false"},
			[]string{"cwltool", "--outdir", runDir + "/outputs", "--parallel", "--debug", "./dir/wf.cwl#main", ".wesgate-params.json"}},
		// A workflow whose name is a placeholder is not expanded again.
		{"placeholder as workflow", "cwltool", "{outputs}", nil,
			[]string{"cwltool", "--outdir", runDir + "/outputs", "./{outputs}", ".wesgate-params.json"}},
		{"params placeholder as workflow", "cwltool", "{params}", nil,
			[]string{"cwltool", "--outdir", runDir + "/outputs", "./{params}", ".wesgate-params.json"}},
		{"snakemake default cores", "snakemake", "Snakefile", nil,
			[]string{"snakemake", "--snakefile", "./Snakefile", "--configfile", ".wesgate-params.json", "--cores", "1"}},
		{"snakemake values", "snakemake", "Snakefile", map[string]string{"--cores": "8", "--keep-going": "true"},
			[]string{"snakemake", "--snakefile", "./Snakefile", "--configfile", ".wesgate-params.json", "--cores", "8", "--keep-going"}},
		{"nextflow empty default omitted", "nextflow", "main.nf", nil,
			[]string{"nextflow", "run", "./main.nf", "-params-file", ".wesgate-params.json"}},
		{"nextflow string value", "nextflow", "main.nf", map[string]string{"-profile": "{workflow}", "-resume": "true"},
			[]string{"nextflow", "run", "./main.nf", "-params-file", ".wesgate-params.json", "-resume", "-profile", "{workflow}"}},
		{"miniwdl", "miniwdl", "/shared/wf.wdl", map[string]string{"--max-tasks": "4"},
			[]string{"miniwdl", "run", "/shared/wf.wdl", "--input", ".wesgate-params.json", "--dir", runDir + "/outputs", "--max-tasks", "4"}},
	}
	for _, tt := range tests {
		e := engineByName(t, tt.engine)
		if got := e.CommandLine(tt.workflow, runDir, tt.values); !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestCommandLineFlagForms(t *testing.T) {
	e := Engine{
		Command: []string{"eng", "--work={work}", PHEngineParams, "{workflow}"},
		Params: []EngineParam{
			{Name: "threads", Type: ParamInt, Flag: "--threads=", Default: "2"},
			{Name: "verbose", Type: ParamBool, Flag: "-v", Default: "true"},
			{Name: "quiet", Type: ParamBool, Default: "false"},
		},
	}
	got := e.CommandLine("w.cwl", "/r", map[string]string{"threads": "6"})
	want := []string{"eng", "--work=/r/work", "--threads=6", "-v", "./w.cwl"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// A client's false turns off a default true.
	got = e.CommandLine("w.cwl", "/r", map[string]string{"verbose": "false"})
	want = []string{"eng", "--work=/r/work", "--threads=2", "./w.cwl"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
