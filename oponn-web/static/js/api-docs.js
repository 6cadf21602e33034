// Starts Swagger UI on /api/docs (kept out of the page so a strict CSP holds).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui" });
});
