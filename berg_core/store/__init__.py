"""Files on disk: the cache (atomic writes, build-once locks), fetching BERG's bucket, HDF5 response
matrices, BERG's pickled formats read without running code (safe_pickle, pickled_arrays), berg's own
safe array store, and the user's stimulus/response files (userfiles). Imports only the framework."""
