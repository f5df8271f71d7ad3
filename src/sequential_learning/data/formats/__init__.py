"""File formats the loaders read, one module per format, never with pickle.

* `idx`: the IDX format of MNIST and Fashion-MNIST (gzip-compressed or plain), and the four
  files of an MNIST-layout directory.
* `cifar`: CIFAR-10's binary batches and CIFAR-100's binary files (not the pickled Python
  versions).
* `npz`: NumPy ``.npz`` archives with ``x_train, y_train, x_test, y_test``.
"""
