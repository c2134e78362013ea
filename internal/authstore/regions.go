package authstore

import (
	"net/url"
	"slices"
	"strings"

	"github.com/noderuntime/noderuntime/internal/config"
)

// RegionBaseURL returns the documented Engage base URL of a region name (us, uk, eu,
// ca, syd, ind), read from config.DefaultEngageBaseURLs(): the host
// api-<region>-site-1.<domain> names the region.
func RegionBaseURL(region string) (string, bool) {
	region = strings.ToLower(strings.TrimSpace(region))
	for _, u := range config.DefaultEngageBaseURLs() {
		if regionOf(u) == region && region != "" {
			return u, true
		}
	}
	return "", false
}

// Regions lists the region names RegionBaseURL knows, in the documented order.
func Regions() []string {
	var out []string
	for _, u := range config.DefaultEngageBaseURLs() {
		if r := regionOf(u); r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func regionOf(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		return ""
	}
	host, ok := strings.CutPrefix(u.Hostname(), "api-")
	if !ok {
		return ""
	}
	region, _, ok := strings.Cut(host, "-site-")
	if !ok {
		return ""
	}
	return region
}

// resolveBase picks the base URL of a request (a region or an explicit URL, not both)
// and checks it against the allowlist.
func (s *Store) resolveBase(region, baseURL string) (base, regionName string, err error) {
	region, baseURL = strings.TrimSpace(region), strings.TrimSpace(baseURL)
	switch {
	case region != "" && baseURL != "":
		return "", "", errorf(ErrInvalid, "give either region or baseUrl, not both")
	case region != "":
		u, ok := RegionBaseURL(region)
		if !ok {
			return "", "", errorf(ErrInvalid, "unknown region "+quote(region)+"; want one of "+strings.Join(Regions(), ", ")+", or a baseUrl")
		}
		base, regionName = u, strings.ToLower(region)
	case baseURL != "":
		u, err := url.Parse(baseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return "", "", errorf(ErrInvalid, "baseUrl must be an absolute http(s) URL without credentials, query or fragment")
		}
		base = config.CanonicalBaseURL(baseURL)
		if r := regionOf(base); r != "" {
			if doc, ok := RegionBaseURL(r); ok && doc == base {
				regionName = r
			}
		}
	default:
		return "", "", errorf(ErrInvalid, "region or baseUrl is required")
	}
	if !s.allowedBase(base) {
		return "", "", errorf(ErrBaseURLNotAllowed, "the Engage base URL "+quote(base)+" is not on the allowlist (ENGAGE_ALLOWED_BASE_URLS)")
	}
	return base, regionName, nil
}

// allowedBase reports whether base is on the allowlist. It is checked wherever a base
// URL leaves the store (creating, re-authorizing, refreshing, handing out a token), not
// only when a row is created: the allowlist may have shrunk since, and a row may have
// been written past the API.
func (s *Store) allowedBase(base string) bool {
	return slices.Contains(s.allowed, config.CanonicalBaseURL(base))
}

// quote shows a caller's value in a message, shortened.
func quote(s string) string {
	if r := []rune(s); len(r) > 100 {
		s = string(r[:100]) + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}
