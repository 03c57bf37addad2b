# SPDX-License-Identifier: GPL-3.0-or-later
"""The VM lab (README.md): images, booting, molecule runs. Its files also run as scripts."""
