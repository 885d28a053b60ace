package wes

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Output collection modes of an engine.
const (
	// OutputsCWL: the engine prints a CWL output object as JSON on stdout.
	OutputsCWL = "cwl"
	// OutputsDirectory: the outputs are the files under the run's outputs/.
	OutputsDirectory = "directory"
	// OutputsWorkdir: the outputs are the files the run created in work/.
	OutputsWorkdir = "workdir"
)

// Placeholders an engine command may use; wesgate fills them in.
const (
	PHWorkflow     = "{workflow}"      // the workflow, relative to work/ or absolute
	PHParams       = "{params}"        // the parameters file, relative to work/
	PHOutputs      = "{outputs}"       // absolute path of the outputs directory
	PHWork         = "{work}"          // absolute path of the working directory
	PHEngineParams = "{engine_params}" // zero or more arguments from engine parameters
)

// ParamsFile is the name of the workflow parameters file in work/. Attachment
// paths may not start with ".wesgate", so it never clashes with one.
const ParamsFile = ".wesgate-params.json"

// Engine describes one workflow engine, as configured.
type Engine struct {
	Name string
	// Types maps a workflow type ("CWL") to the type versions it runs.
	Types map[string][]string
	// Command is the engine's command line with placeholders.
	Command []string
	// VersionCommand prints the engine's version.
	VersionCommand []string
	// Version is the detected version ("" until Detect succeeds).
	Version string
	// Params are the engine parameters a client may set; nothing else passes.
	Params []EngineParam
	// Outputs is how outputs are collected: OutputsCWL, OutputsDirectory or OutputsWorkdir.
	Outputs string
	// Setup lines run in the batch script before the engine (module load ...).
	Setup []string
}

// Parameter types.
const (
	ParamBool   = "bool"
	ParamInt    = "int"
	ParamFloat  = "float"
	ParamString = "string"
)

// EngineParam is one allowed engine parameter.
type EngineParam struct {
	Name    string   // the key clients send in workflow_engine_parameters
	Type    string   // ParamBool, ParamInt, ParamFloat or ParamString
	Default string   // the value used when the client sends none ("" for none)
	Flag    string   // the engine's option; Name when empty. A Flag ending in "=" joins its value.
	Choices []string // for strings: the only values allowed (empty: a plain token)
	Min     *float64 // for numbers: the smallest value allowed
	Max     *float64 // for numbers: the largest value allowed
	Help    string
}

// DefaultEngines returns wesgate's built-in engine table. Only engines whose
// command is found and whose version is detected are offered.
func DefaultEngines() []Engine {
	zero, one := 0.0, 1.0
	return []Engine{
		{
			Name:           "cwltool",
			Types:          map[string][]string{"CWL": {"v1.0", "v1.1", "v1.2"}},
			Command:        []string{"cwltool", "--outdir", PHOutputs, PHEngineParams, PHWorkflow, PHParams},
			VersionCommand: []string{"cwltool", "--version"},
			Outputs:        OutputsCWL,
			Params: []EngineParam{
				{Name: "--parallel", Type: ParamBool, Default: "false", Help: "run independent steps in parallel"},
				{Name: "--no-container", Type: ParamBool, Default: "false", Help: "ignore DockerRequirement hints"},
				{Name: "--singularity", Type: ParamBool, Default: "false", Help: "run containers with Singularity/Apptainer"},
				{Name: "--debug", Type: ParamBool, Default: "false", Help: "verbose engine log"},
			},
		},
		{
			Name:           "snakemake",
			Types:          map[string][]string{"SMK": {"6", "7", "8"}},
			Command:        []string{"snakemake", "--snakefile", PHWorkflow, "--configfile", PHParams, PHEngineParams},
			VersionCommand: []string{"snakemake", "--version"},
			Outputs:        OutputsWorkdir,
			Params: []EngineParam{
				{Name: "--cores", Type: ParamInt, Default: "1", Min: &one, Help: "cores snakemake may use"},
				{Name: "--keep-going", Type: ParamBool, Default: "false"},
				{Name: "--forceall", Type: ParamBool, Default: "false"},
			},
		},
		{
			Name:           "nextflow",
			Types:          map[string][]string{"NFL": {"DSL2"}},
			Command:        []string{"nextflow", "run", PHWorkflow, "-params-file", PHParams, PHEngineParams},
			VersionCommand: []string{"nextflow", "-version"},
			Outputs:        OutputsWorkdir,
			Params: []EngineParam{
				{Name: "-resume", Type: ParamBool, Default: "false"},
				{Name: "-profile", Type: ParamString, Default: ""},
			},
		},
		{
			Name:           "miniwdl",
			Types:          map[string][]string{"WDL": {"1.0", "1.1"}},
			Command:        []string{"miniwdl", "run", PHWorkflow, "--input", PHParams, "--dir", PHOutputs, PHEngineParams},
			VersionCommand: []string{"miniwdl", "--version"},
			Outputs:        OutputsDirectory,
			Params: []EngineParam{
				{Name: "--copy-input-files", Type: ParamBool, Default: "false"},
				{Name: "--max-tasks", Type: ParamInt, Default: "", Min: &zero},
			},
		},
	}
}

// Detect runs the engine's version command and records the version. It fails
// when the command is missing or prints no version.
func (e *Engine) Detect(ctx context.Context) error {
	return e.DetectWith(ctx, LocalVersion)
}

// VersionRunner runs an engine's version command, after the engine's setup
// lines, where the engine will run, and returns what it printed.
type VersionRunner func(ctx context.Context, setup, cmd []string) ([]byte, error)

// LocalVersion runs the version command on this machine. Setup lines are
// for batch jobs on a cluster and are not run here.
func LocalVersion(ctx context.Context, _, command []string) ([]byte, error) {
	path, err := exec.LookPath(command[0])
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, command[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(command, " "), err)
	}
	return out.Bytes(), nil
}

// DetectWith is Detect with the version command run by run (on a cluster,
// for example).
func (e *Engine) DetectWith(ctx context.Context, run VersionRunner) error {
	if len(e.VersionCommand) == 0 {
		return fmt.Errorf("engine %s: no version command", e.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := run(ctx, e.Setup, e.VersionCommand)
	if err != nil {
		return fmt.Errorf("engine %s: %w", e.Name, err)
	}
	v := ParseVersion(string(out))
	if v == "" {
		return fmt.Errorf("engine %s: no version in %q", e.Name, firstLine(string(out)))
	}
	e.Version = v
	return nil
}

// ParseVersion finds the version in an engine's --version output: on the
// first line that has a word starting with a digit (or "v" and a digit), the
// first such word with a dot in it, else the last such word; without the "v".
// "/usr/bin/cwltool 3.1.20230201224320" gives "3.1.20230201224320",
// "miniwdl v1.9.1" gives "1.9.1", "7.21.0" gives "7.21.0", and nextflow's
// "version 23.04.1 build 5866" gives "23.04.1", not the build number.
func ParseVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		var last string
		for _, w := range strings.Fields(line) {
			w = strings.TrimRight(strings.TrimPrefix(w, "v"), ".,;")
			if w == "" || w[0] < '0' || w[0] > '9' {
				continue
			}
			if strings.Contains(w, ".") {
				return w
			}
			last = w
		}
		if last != "" {
			return last
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// param returns the engine's parameter called name.
func (e *Engine) param(name string) (EngineParam, bool) {
	for _, p := range e.Params {
		if p.Name == name {
			return p, true
		}
	}
	return EngineParam{}, false
}

// normalizeParam checks a client's value against p and returns it as a string.
func normalizeParam(p EngineParam, v any) (string, error) {
	switch p.Type {
	case ParamBool:
		switch x := v.(type) {
		case bool:
			return strconv.FormatBool(x), nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil && (x == "true" || x == "false") {
				return strconv.FormatBool(b), nil
			}
		}
		return "", fmt.Errorf("must be true or false")
	case ParamInt, ParamFloat:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case string:
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
				return "", fmt.Errorf("must be a number")
			}
		default:
			return "", fmt.Errorf("must be a number")
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return "", fmt.Errorf("must be a finite number")
		}
		if p.Type == ParamInt && (f != math.Trunc(f) || math.Abs(f) > 1<<53) {
			return "", fmt.Errorf("must be a whole number")
		}
		if p.Min != nil && f < *p.Min {
			return "", fmt.Errorf("must be at least %g", *p.Min)
		}
		if p.Max != nil && f > *p.Max {
			return "", fmt.Errorf("must be at most %g", *p.Max)
		}
		if p.Type == ParamInt {
			return strconv.FormatInt(int64(f), 10), nil
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case ParamString:
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("must be a string")
		}
		if len(p.Choices) > 0 {
			for _, c := range p.Choices {
				if s == c {
					return s, nil
				}
			}
			return "", fmt.Errorf("must be one of %s", strings.Join(p.Choices, ", "))
		}
		if !plainToken(s) {
			return "", fmt.Errorf("must be 1 to 256 letters, digits or -_.:/=,+@, not starting with -")
		}
		return s, nil
	}
	return "", fmt.Errorf("has an unknown type %q in the configuration", p.Type)
}

// plainToken reports whether s is a short word of plain characters. It may
// not start with "-", so the engine cannot take it for an option of its own.
func plainToken(s string) bool {
	if s == "" || len(s) > 256 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_.:/=,+@", r):
		default:
			return false
		}
	}
	return true
}

// paramArgs turns effective parameter values into engine arguments, in the
// order the parameters are declared.
func (e *Engine) paramArgs(values map[string]string) []string {
	var args []string
	for _, p := range e.Params {
		v, ok := values[p.Name]
		if !ok {
			v = p.Default
		}
		if v == "" || (p.Type == ParamBool && v != "true") {
			continue
		}
		flag := p.Flag
		if flag == "" {
			flag = p.Name
		}
		switch {
		case p.Type == ParamBool:
			args = append(args, flag)
		case strings.HasSuffix(flag, "="):
			args = append(args, flag+v)
		default:
			args = append(args, flag, v)
		}
	}
	return args
}

// CommandLine expands the engine's command for one run. A relative
// workflow is given as "./path", so that no file name reads as an option.
func (e *Engine) CommandLine(workflow, runDir string, values map[string]string) []string {
	if !strings.HasPrefix(workflow, "/") && !strings.HasPrefix(workflow, "./") {
		workflow = "./" + workflow
	}
	// One pass, so a value that looks like a placeholder is not expanded again.
	r := strings.NewReplacer(PHWorkflow, workflow, PHParams, ParamsFile,
		PHOutputs, runDir+"/outputs", PHWork, runDir+"/work")
	var out []string
	for _, a := range e.Command {
		if a == PHEngineParams {
			out = append(out, e.paramArgs(values)...)
			continue
		}
		out = append(out, r.Replace(a))
	}
	return out
}
