// Starts Swagger UI on /api/v1/docs (a file of its own, so the page's policy allows no inline
// script). The token from "Authorize" stays in the page's memory: persistAuthorization is off, so
// nothing is kept in the browser's storage.
window.ui = SwaggerUIBundle({ url: 'openapi.json', dom_id: '#swagger-ui', persistAuthorization: false });
