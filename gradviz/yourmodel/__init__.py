"""gradviz for the user's own Keras model: a model.fit callback, an init check, a run file, notebook views."""
