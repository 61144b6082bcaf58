package api

import (
	"encoding/json"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/store"
)

// previewView is one pull request preview of a project (docs/api.md).
type previewView struct {
	PRNumber       int             `json:"pr_number"`
	State          string          `json:"state"`
	HeadSHA        string          `json:"head_sha"`
	HeadRef        string          `json:"head_ref"`
	HeadRepo       string          `json:"head_repo"`
	Fork           bool            `json:"fork"`
	Author         string          `json:"author"`
	URLs           json.RawMessage `json:"urls"`
	ApprovedBy     string          `json:"approved_by"`
	StopReason     string          `json:"stop_reason"`
	PullRequestURL string          `json:"pull_request_url"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	LastDeployedAt *string         `json:"last_deployed_at"`
}

func (a *API) listPreviews(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	rows, err := a.st.PreviewListings(c.Request.Context(), p.ID)
	if err != nil {
		return err
	}
	return list(c, rows, func(r store.PreviewListing) previewView {
		return previewView{
			PRNumber: r.PRNumber, State: r.State, HeadSHA: r.HeadSHA, HeadRef: r.HeadRef,
			HeadRepo: r.HeadRepoFullName, Fork: r.HeadRepoFullName != "" && r.HeadRepoFullName != p.RepoFullName,
			Author: r.AuthorLogin, URLs: r.URLs, ApprovedBy: r.ApprovedBy, StopReason: r.StopReason,
			PullRequestURL: a.githubURL + "/" + p.RepoFullName + "/pull/" + strconv.Itoa(r.PRNumber),
			CreatedAt:      timestamp(r.CreatedAt), UpdatedAt: timestamp(r.UpdatedAt), LastDeployedAt: nullTimestamp(r.LastDeployedAt),
		}
	})
}
