// Starts Swagger UI on /api/docs (kept out of the page so a strict CSP holds).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    onComplete: () => {
      // Swagger UI's server picker has an empty label of its own: name it.
      const servers = document.getElementById("servers");
      if (servers) servers.setAttribute("aria-label", "API server");
      // Swagger UI puts its operations in a <main>; the title and the
      // server picker above it become landmarks too, so every part of the
      // page sits in one.
      const info = document.querySelector("#swagger-ui .information-container");
      if (info) info.setAttribute("role", "banner");
      const schemes = document.querySelector("#swagger-ui .scheme-container");
      if (schemes) {
        schemes.setAttribute("role", "region");
        schemes.setAttribute("aria-label", "API server");
      }
      // Headings go down one level at a time, as the page reads.
      let previous = 0;
      document.querySelectorAll("h1, h2, h3, h4, h5, h6").forEach((heading) => {
        const level = Number(heading.tagName.slice(1));
        const fixed = Math.min(level, previous + 1);
        if (fixed !== level) {
          heading.setAttribute("role", "heading");
          heading.setAttribute("aria-level", String(fixed));
        }
        previous = fixed;
      });
    },
  });
});
