// Once the page has loaded, sets the body's data-images-ok to "true" when every image has
// decoded (the tests check it in a headless browser) and data-image-count to their number. The
// only script the Content-Security-Policy lets run: by its hash, so no other script can.
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesOk = ok ? "true" : "false";
  document.body.dataset.imageCount = String(images.length);
});
