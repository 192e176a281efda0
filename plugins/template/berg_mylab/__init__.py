"""berg-mylab: trained fMRI encoding models for berg (see README.md)."""
