"""How images are searched: Orange's distances, exact k-NN with its 8-bit first pass, and
approximate FAISS candidates re-ranked exactly."""
