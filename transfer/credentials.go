package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/nosproject/nos/internal/registry"
)

// dockerHubKey is where docker keeps Docker Hub's credentials.
const dockerHubKey = "https://index.docker.io/v1/"

// credentialKey is the key of a registry's credentials in docker's
// config file, as docker login writes it.
func credentialKey(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return dockerHubKey
	}
	return reg.RegistryStr()
}

// Login checks the credentials with the registry server (HOST[:PORT]) and,
// if it accepts them, stores them as docker login does: in the credential
// helper the docker config names, else in $DOCKER_CONFIG/config.json (or
// ~/.docker/config.json), which is kept at mode 0600. It returns the file
// written or the helper used.
func Login(ctx context.Context, cfg registry.Config, server, user, password string) (string, error) {
	reg, err := cfg.Registry(server)
	if err != nil {
		return "", err
	}
	if user == "" || password == "" {
		return "", errors.New("login: a user name and a password are needed")
	}
	if err := CheckLogin(ctx, cfg, reg, user, password); err != nil {
		return "", err
	}
	return storeCredentials(reg, user, password)
}

// CheckLogin asks the registry whether it accepts the credentials: GET
// /v2/ with them, after a token exchange if it wants one.
func CheckLogin(ctx context.Context, cfg registry.Config, reg name.Registry, user, password string) error {
	c := cfg.Client()
	what := "login " + reg.RegistryStr()
	ch, err := transport.Ping(ctx, reg, c.RoundTripper())
	if err != nil {
		return c.Explain(reg.RegistryStr(), what, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	rt, err := transport.NewWithContext(ctx, reg, auth, c.RoundTripper(), []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return c.Explain(reg.RegistryStr(), what, err)
	}
	scheme := "https"
	if ch.Insecure {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return c.Explain(reg.RegistryStr(), what, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s: %w: the registry refused user %q with that password (HTTP %d)", what, registry.ErrUnauthorized, user, resp.StatusCode)
	}
	return fmt.Errorf("%s: the registry answered HTTP %d to GET /v2/", what, resp.StatusCode)
}

// loadDockerConfig loads docker's config file, refusing one it cannot
// parse rather than overwriting it.
func loadDockerConfig() (*configfile.ConfigFile, error) {
	cf, err := dockerconfig.Load(dockerconfig.Dir())
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if !cf.ContainsAuth() {
		cf.CredentialsStore = credentials.DetectDefaultStore(cf.CredentialsStore)
	}
	return cf, nil
}

func storeCredentials(reg name.Registry, user, password string) (string, error) {
	cf, err := loadDockerConfig()
	if err != nil {
		return "", err
	}
	key := credentialKey(reg)
	store := cf.GetCredentialsStore(key)
	if err := store.Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
		return "", fmt.Errorf("storing the credentials: %w", err)
	}
	if h := helperOf(cf, key); h != "" {
		return "docker-credential-" + h, nil
	}
	if err := os.Chmod(cf.Filename, 0o600); err != nil {
		return "", fmt.Errorf("storing the credentials: %w", err)
	}
	return cf.Filename, nil
}

func helperOf(cf *configfile.ConfigFile, key string) string {
	if h, ok := cf.CredentialHelpers[key]; ok {
		return h
	}
	return cf.CredentialsStore
}

// Logout removes the credentials stored for the registry server. It
// reports false if there were none.
func Logout(cfg registry.Config, server string) (bool, error) {
	reg, err := cfg.Registry(server)
	if err != nil {
		return false, err
	}
	cf, err := loadDockerConfig()
	if err != nil {
		return false, err
	}
	key := credentialKey(reg)
	_, inFile := cf.AuthConfigs[key]
	got, err := cf.GetCredentialsStore(key).Get(key)
	if err != nil && !inFile {
		return false, fmt.Errorf("logout: %w", err)
	}
	if !inFile && got.Username == "" && got.Password == "" && got.IdentityToken == "" {
		return false, nil
	}
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return false, fmt.Errorf("logout: %w", err)
	}
	if _, still := cf.AuthConfigs[key]; still {
		delete(cf.AuthConfigs, key)
		if err := cf.Save(); err != nil {
			return false, fmt.Errorf("logout: %w", err)
		}
	}
	return true, nil
}
