package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/noderuntime/noderuntime/internal/nodes"
)

// CatalogRoutes serves the node catalog under /v1, generated from the registry the
// executions run: GET /nodes (every node with every version) and GET
// /nodes/{node}/versions/{version} ("1.3" or "v1.3").
func CatalogRoutes(reg *nodes.Registry) func(chi.Router) {
	all := reg.CatalogJSON()
	allTag := etag(all)
	return func(r chi.Router) {
		r.Get("/nodes", func(w http.ResponseWriter, r *http.Request) {
			writeCatalog(w, r, all, allTag)
		})
		r.Get("/nodes/{node}/versions/{version}", func(w http.ResponseWriter, r *http.Request) {
			v, err := reg.Lookup(pathParam(r, "node"), pathParam(r, "version"))
			if err != nil {
				WriteProblem(w, r, lookupProblem(reg, err))
				return
			}
			body := v.CatalogJSON()
			writeCatalog(w, r, body, etag(body))
		})
	}
}

// writeCatalog answers with a catalog document; it changes only with the binary, so
// clients may revalidate it with If-None-Match.
func writeCatalog(w http.ResponseWriter, r *http.Request, body []byte, tag string) {
	h := w.Header()
	h.Set("ETag", tag)
	h.Set("Cache-Control", "no-cache")
	if noneMatch(r.Header.Values("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// noneMatch reports whether If-None-Match (its header lines) names tag, or is "*":
// a list of entity tags, compared weakly (RFC 9110 §13.1.2, §8.8.3.2).
func noneMatch(lines []string, tag string) bool {
	for _, line := range lines {
		for _, t := range strings.Split(line, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == tag {
				return true
			}
		}
	}
	return false
}
