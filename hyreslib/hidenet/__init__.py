"""hideNet: hierarchical odd/even pixel splitting with learned predictors, as a progressive
lossless / near-lossless / generative codec (see :mod:`.split`, :mod:`.predictors`,
:mod:`.colour`, :mod:`.codec` with its file format :mod:`.bitstream`, :mod:`.training`,
:mod:`.evaluate`)."""
