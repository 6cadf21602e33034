// Starts Swagger UI on /api/docs (kept out of the page so a strict CSP holds).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    onComplete: () => {
      // Swagger UI's server picker has an empty label of its own; name it,
      // and give its section headings the level after the page's title.
      const servers = document.getElementById("servers");
      if (servers) servers.setAttribute("aria-label", "API server");
      document.querySelectorAll(".opblock-tag").forEach((heading) => {
        heading.setAttribute("role", "heading");
        heading.setAttribute("aria-level", "2");
      });
    },
  });
});
