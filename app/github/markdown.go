package github

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Report is the outcome of one deploy, as the agent's JOB_RESULT and the log tail tell it.
type Report struct {
	// Status is the JOB_RESULT status: success, failure, timed_out, rolled_back or cancelled.
	Status string
	// SHA is the commit that was deployed.
	SHA string
	// Environment is the project's name, shown in the summary when set.
	Environment string
	// Duration is how long the job ran.
	Duration time.Duration
	// Error is the agent's error, if any.
	Error string
	// Services are the compose services after the job.
	Services []ServiceRow
	// FailedService names the service that made the deploy fail, if one did.
	FailedService string
	// RolledBackTo is the sha the agent went back to, for rolled_back.
	RolledBackTo string
	// Plan is what the agent planned to change, in one line, when it said.
	Plan string
	// LogTail is the last lines of the job's log, oldest first.
	LogTail []string
}

// ServiceRow is one compose service in the summary table.
type ServiceRow struct {
	// Name is the compose service name.
	Name string
	// State is compose's state (running, exited, …).
	State string
	// Health is healthy, unhealthy, starting, or empty without a health check.
	Health string
	// ContainerID is the container's id; the summary shows 12 characters, as docker does.
	ContainerID string
}

const (
	maxTitleChars = 120
	// maxErrorChars keeps one runaway error from crowding the service table out of the summary.
	maxErrorChars = 4000
)

// Summary renders a report as a check run's title, markdown summary (with the per-service table)
// and text (the log tail in a fenced block). The results fit GitHub's limits on their own: the log
// tail loses its oldest lines, never its fences.
func Summary(r Report) (title, summary, text string) {
	return truncateHead(reportTitle(r), maxTitleChars), reportSummary(r), logText(r.LogTail)
}

func reportTitle(r Report) string {
	sha := shortSHA(r.SHA)
	switch r.Status {
	case "success":
		if strings.TrimSpace(r.Error) != "" {
			// A post_deploy hook failed after the new version went live (the Error says which).
			return fmt.Sprintf("Deployed %s in %s, with a warning", sha, formatDuration(r.Duration))
		}
		return fmt.Sprintf("Deployed %s in %s", sha, formatDuration(r.Duration))
	case "rolled_back":
		return "Rolled back: " + failReason(r)
	case "failure":
		return "Deploy failed: " + failReason(r)
	case "timed_out":
		return "Timed out after " + formatDuration(r.Duration)
	case "cancelled":
		return "Cancelled after " + formatDuration(r.Duration)
	default:
		return fmt.Sprintf("Deploy of %s ended: %s", sha, oneLine(r.Status))
	}
}

// failReason says in a few words what went wrong: the failing service's health or state, else the
// first line of the error.
func failReason(r Report) string {
	if r.FailedService != "" {
		for _, s := range r.Services {
			if s.Name != r.FailedService {
				continue
			}
			switch {
			case s.Health == "unhealthy":
				return oneLine(s.Name) + " unhealthy"
			case s.State != "" && s.State != "running":
				return oneLine(s.Name) + " " + oneLine(s.State)
			}
		}
		return oneLine(r.FailedService) + " failed"
	}
	if first, _, _ := strings.Cut(strings.TrimSpace(r.Error), "\n"); first != "" {
		return oneLine(first)
	}
	return "no error was reported"
}

func reportSummary(r Report) string {
	var b strings.Builder
	sha := codeSpan(shortSHA(r.SHA))
	where := ""
	if r.Environment != "" {
		where = " to **" + escapeInline(r.Environment) + "**"
	}
	took := formatDuration(r.Duration)
	switch r.Status {
	case "success":
		fmt.Fprintf(&b, "Deployed %s%s in %s.\n", sha, where, took)
	case "rolled_back":
		fmt.Fprintf(&b, "The deploy of %s%s failed after %s", sha, where, took)
		if r.RolledBackTo != "" {
			fmt.Fprintf(&b, " and was rolled back to %s.\n", codeSpan(shortSHA(r.RolledBackTo)))
		} else {
			b.WriteString(" and was rolled back to the previous deploy.\n")
		}
	case "failure":
		fmt.Fprintf(&b, "The deploy of %s%s failed after %s.\n", sha, where, took)
	case "timed_out":
		fmt.Fprintf(&b, "The deploy of %s%s did not finish within %s.\n", sha, where, took)
	case "cancelled":
		fmt.Fprintf(&b, "The deploy of %s%s was cancelled after %s.\n", sha, where, took)
	default:
		fmt.Fprintf(&b, "The deploy of %s%s ended with status %s after %s.\n", sha, where, codeSpan(r.Status), took)
	}
	if r.Plan != "" {
		fmt.Fprintf(&b, "\n**Plan:** %s\n", escapeInline(r.Plan))
	}
	if r.FailedService != "" {
		fmt.Fprintf(&b, "\nFailing service: **%s**.\n", escapeInline(r.FailedService))
	}
	if e := strings.TrimSpace(r.Error); e != "" {
		heading := "Error"
		if r.Status == "success" {
			heading = "Warning"
		}
		b.WriteString("\n**" + heading + "**\n\n")
		b.WriteString(fenced("text", truncateHead(e, maxErrorChars)))
	}
	b.WriteString("\n")
	if len(r.Services) == 0 {
		b.WriteString("No services were reported.\n")
	} else {
		b.WriteString("| Service | State | Health | Container |\n| --- | --- | --- | --- |\n")
		for _, s := range r.Services {
			name := cell(s.Name)
			if s.Name == r.FailedService {
				name = "**" + name + "**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, cell(s.State), cell(s.Health), containerCell(s.ContainerID))
		}
	}
	if n := len(r.LogTail); n > 0 {
		fmt.Fprintf(&b, "\nThe last %d log lines are below.\n", n)
	}
	return truncateHead(b.String(), MaxOutputChars)
}

// logText puts the log tail in one fenced block, dropping the oldest lines (and, for a single
// enormous line, its start) until the whole text fits GitHub's limit.
func logText(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	clean := make([]string, len(lines))
	for i, l := range lines {
		clean[i] = cleanLogLine(l)
	}
	fence := strings.Repeat("`", max(3, longestBacktickRun(strings.Join(clean, "\n"))+1))
	// The widest header, so that the budget holds whatever count ends up in it.
	widest := fmt.Sprintf("### Log tail (last %d of %d lines)\n\n", len(clean), len(clean))
	budget := MaxOutputChars - textLen(widest) - 2*textLen(fence) - textLen("text\n") - 2
	kept, used := 0, 0
	for i := len(clean) - 1; i >= 0; i-- {
		n := textLen(clean[i]) + 1 // and its newline
		if used+n > budget {
			if kept == 0 {
				clean[i] = truncateTail(clean[i], budget-1)
				kept = 1
			}
			break
		}
		kept++
		used += n
	}
	body := strings.Join(clean[len(clean)-kept:], "\n")
	header := fmt.Sprintf("### Log tail (%d lines)\n\n", kept)
	if kept < len(clean) {
		header = fmt.Sprintf("### Log tail (last %d of %d lines)\n\n", kept, len(clean))
	}
	return header + fence + "text\n" + body + "\n" + fence + "\n"
}

// ansiEscape matches terminal colour and cursor sequences, which compose prints and GitHub would show raw.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// cleanLogLine drops terminal escapes and keeps what a terminal would show after carriage returns.
func cleanLogLine(l string) string {
	l = ansiEscape.ReplaceAllString(l, "")
	l = strings.TrimRight(l, "\r\n")
	if i := strings.LastIndexByte(l, '\r'); i >= 0 {
		l = l[i+1:]
	}
	return strings.ReplaceAll(l, "\n", " ")
}

// fenced wraps s in a code fence longer than any run of backticks inside it, so nothing in s can close it.
func fenced(info, s string) string {
	fence := strings.Repeat("`", max(3, longestBacktickRun(s)+1))
	return fence + info + "\n" + strings.TrimRight(s, "\n") + "\n" + fence + "\n"
}

func longestBacktickRun(s string) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// codeSpan renders s as inline code whatever backticks it holds (CommonMark: a longer delimiter,
// padded with spaces when s starts or ends with a backtick).
func codeSpan(s string) string {
	s = oneLine(s)
	if s == "" {
		return ""
	}
	delim := strings.Repeat("`", longestBacktickRun(s)+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return delim + s + delim
}

// markdownSpecial are the characters that could start markup, break a table cell or open HTML.
const markdownSpecial = "\\`*_[]<>|~&#!"

// escapeInline makes s plain text in a markdown line: one line, markup characters backslash-escaped.
func escapeInline(s string) string {
	s = oneLine(s)
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(markdownSpecial, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cell is escapeInline for a table cell, with a dash for an empty one.
func cell(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return escapeInline(s)
}

func containerCell(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	if id == "" {
		return "—"
	}
	if strings.Trim(id, "0123456789abcdef") == "" {
		return codeSpan(id)
	}
	return escapeInline(id)
}

// oneLine joins the lines of s with spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", " ")), " ")
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// formatDuration writes 12.3s, 5m07s or 1h02m.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
