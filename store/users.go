package store

import (
	"context"
	"time"
)

// User is a person who signed in with GitHub.
type User struct {
	ID        int64     `db:"id"`
	GitHubID  int64     `db:"github_id"`
	Login     string    `db:"login"`
	Name      string    `db:"name"`
	Email     string    `db:"email"`
	AvatarURL string    `db:"avatar_url"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

// UpsertUser creates the user with u.GitHubID or refreshes its profile fields.
func (s *Store) UpsertUser(ctx context.Context, u User) (User, error) {
	return getAs[User](ctx, s, "user", u.GitHubID, `
		INSERT INTO users (github_id, login, name, email, avatar_url)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (github_id) DO UPDATE
		SET login = EXCLUDED.login, name = EXCLUDED.name, email = EXCLUDED.email,
		    avatar_url = EXCLUDED.avatar_url, updated_at = now()
		RETURNING *`, u.GitHubID, u.Login, u.Name, u.Email, u.AvatarURL)
}

// UserByID returns one user.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return getAs[User](ctx, s, "user", id, `SELECT * FROM users WHERE id = $1`, id)
}

// UserByGitHubID returns the user with that GitHub account id.
func (s *Store) UserByGitHubID(ctx context.Context, githubID int64) (User, error) {
	return getAs[User](ctx, s, "user with GitHub id", githubID, `SELECT * FROM users WHERE github_id = $1`, githubID)
}
