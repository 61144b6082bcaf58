// Package agentdist serves the agent the control plane was built with: the linux/amd64 and
// linux/arm64 binaries, their SHA256SUMS and /install.sh, which downloads and verifies them.
package agentdist

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Arches are the architectures make build cross-compiles the agent for.
var Arches = []string{"amd64", "arm64"}

// BinaryName is the file name of the agent for arch, in the dist folder and in SHA256SUMS.
func BinaryName(arch string) string { return "stagely-agent-linux-" + arch }

// built holds what make build put in dist/; without it only dist/README.md is there.
//
//go:embed dist
var built embed.FS

//go:embed install.sh
var installScript string

// notBuilt is the answer for every download when the server has no agent binaries. It is a
// shell script, so `curl -sSL …/install.sh | sh` shows it too.
const notBuilt = "echo 'stagely: this server was built without agent binaries; run make build " +
	"(or point STAGELY_AGENT_DIR at a folder holding stagely-agent-linux-amd64 and -arm64)' >&2; exit 1\n"

// Options configure a Dist.
type Options struct {
	// PublicURL is the control plane's base URL; /install.sh downloads from it by default.
	PublicURL string
	// Unit is the systemd unit install.sh installs (deploy/stagely-agent.service).
	Unit []byte
	// Files, when set, holds the binaries to serve (named by BinaryName) instead of the
	// embedded ones; the server sets it from STAGELY_AGENT_DIR.
	Files fs.FS
}

// Dist serves the agent binaries it found, their checksums and the installer.
type Dist struct {
	files   fs.FS
	sums    map[string]string // arch -> hex SHA-256
	sumFile []byte
	script  []byte
	modTime time.Time
	version string
}

// New loads the binaries (from opts.Files, else the embedded ones) and checksums them once.
// Finding none is not an error: the downloads then answer 503 saying how to build them.
func New(opts Options) (*Dist, error) {
	files := opts.Files
	if files == nil {
		sub, err := fs.Sub(built, "dist")
		if err != nil {
			return nil, fmt.Errorf("open embedded agent binaries: %w", err)
		}
		files = sub
	}
	d := &Dist{files: files, sums: map[string]string{}, modTime: time.Now()}
	var err error
	var sumFile bytes.Buffer
	for _, arch := range Arches {
		var sum string
		sum, err = checksum(files, BinaryName(arch))
		if err != nil {
			return nil, err
		}
		if sum == "" {
			continue
		}
		d.sums[arch] = sum
		fmt.Fprintf(&sumFile, "%s  %s\n", sum, BinaryName(arch))
	}
	d.sumFile = sumFile.Bytes()
	if d.version, err = readVersion(files); err != nil {
		return nil, err
	}
	script, err := renderScript(opts.PublicURL, opts.Unit)
	if err != nil {
		return nil, err
	}
	d.script = script
	return d, nil
}

// checksum returns the hex SHA-256 of name in files, or "" when there is no such file.
func checksum(files fs.FS, name string) (string, error) {
	f, err := files.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("open agent binary %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("checksum agent binary %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// renderScript puts the server's URL, single-quoted for sh, and the unit into install.sh.
func renderScript(publicURL string, unit []byte) ([]byte, error) {
	if publicURL == "" {
		return nil, fmt.Errorf("agentdist: the public URL is empty: set STAGELY_PUBLIC_URL")
	}
	if len(unit) == 0 || bytes.Contains(unit, []byte("\nSTAGELY_UNIT")) {
		return nil, fmt.Errorf("agentdist: the systemd unit is empty or holds the installer's heredoc marker")
	}
	quoted := "'" + strings.ReplaceAll(strings.TrimRight(publicURL, "/"), "'", `'\''`) + "'"
	r := strings.NewReplacer("@STAGELY_URL@", quoted, "@STAGELY_UNIT@", strings.TrimRight(string(unit), "\n"))
	return []byte(r.Replace(installScript)), nil
}

// Available says whether the server has a binary for arch.
func (d *Dist) Available(arch string) bool { _, ok := d.sums[arch]; return ok }

// Checksum returns the hex SHA-256 of the agent for arch, or "" when there is none.
func (d *Dist) Checksum(arch string) string { return d.sums[arch] }

// Register adds GET /install.sh, /agent/download/SHA256SUMS and /agent/download/linux/{arch}
// (DESIGN.md §7). They need no session: the token is what authenticates an agent.
func (d *Dist) Register(r gin.IRouter) {
	r.GET("/install.sh", d.install)
	r.GET("/agent/download/SHA256SUMS", d.sha256sums)
	r.GET("/agent/download/linux/:arch", d.binary)
}

func (d *Dist) install(c *gin.Context) {
	if d.unavailable(c) {
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/x-shellscript; charset=utf-8", d.script)
}

func (d *Dist) sha256sums(c *gin.Context) {
	if d.unavailable(c) {
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", d.sumFile)
}

func (d *Dist) binary(c *gin.Context) {
	arch := c.Param("arch")
	if d.unavailable(c) {
		return
	}
	if !slices.Contains(Arches, arch) || !d.Available(arch) {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8",
			[]byte(fmt.Sprintf("this server has no agent for linux/%s; it has %s\n", arch, strings.Join(d.Platforms(), ", "))))
		return
	}
	f, err := d.files.Open(BinaryName(arch))
	if err != nil {
		_ = c.Error(err)
		c.Status(http.StatusInternalServerError)
		return
	}
	defer f.Close()
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		_ = c.Error(fmt.Errorf("agent binary %s cannot seek", BinaryName(arch)))
		c.Status(http.StatusInternalServerError)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="`+BinaryName(arch)+`"`)
	c.Header("X-Checksum-Sha256", d.sums[arch])
	http.ServeContent(c.Writer, c.Request, BinaryName(arch), d.modTime, rs)
}

// unavailable answers 503 when the server has no binaries at all.
func (d *Dist) unavailable(c *gin.Context) bool {
	if len(d.sums) > 0 {
		return false
	}
	c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte(notBuilt))
	return true
}

// Platforms lists the platforms the server has an agent for, like linux/amd64.
func (d *Dist) Platforms() []string {
	var out []string
	for _, a := range Arches {
		if d.Available(a) {
			out = append(out, "linux/"+a)
		}
	}
	return out
}

// InstallCommand is the one line the dashboard shows for a new agent: it fetches this
// server's installer and runs it as root with the token. The token travels in the
// environment (export is a shell builtin, and sudo passes the variable on), so it is on no
// program's command line, which ps shows to every user of the machine (docs/agents.md).
func InstallCommand(publicURL, token string) string {
	u := strings.TrimRight(publicURL, "/") + "/install.sh"
	if strings.IndexFunc(u, notShellSafe) >= 0 {
		u = "'" + strings.ReplaceAll(u, "'", `'\''`) + "'"
	}
	if strings.IndexFunc(token, notShellSafe) >= 0 {
		token = "'" + strings.ReplaceAll(token, "'", `'\''`) + "'"
	}
	return "export STAGELY_TOKEN=" + token + "; curl -fsSL " + u + " | sudo --preserve-env=STAGELY_TOKEN sh"
}

// notShellSafe is true for a character sh would treat specially in an unquoted word.
func notShellSafe(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":/._-", r))
}
