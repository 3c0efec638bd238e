"""Weak-lensing mass mapping: convergence ``kappa`` from noisy shear ``(gamma1, gamma2)``.

Models (``model.name``):

* ``unet`` (default; any network of kind ``image_to_image`` of :mod:`cosmobench.nn` is a model
  the same way): :class:`cosmobench.nn.unet.UNet` on the channels ``gamma1 / s``,
  ``gamma2 / s``, ``mask`` and the unsmoothed Kaiser–Squires E-mode ``kappa_KS / s``
  (``s`` = train-split rms of the observed shear; KS is a fixed linear layer, so the network
  does not have to learn the non-local inversion), output ``kappa / s_kappa`` (train-split
  standard deviation of kappa). Loss: mean squared error inside the mask. Fully convolutional:
  ``predict`` takes flat maps of any size (the U-Net pads internally to a multiple of
  ``2**depth`` and crops back). On HEALPix maps (``data.sky=healpix`` or a HEALPix predict
  input) it runs on gnomonic patches (:class:`cosmobench.sim.healpix.GnomonicPatches`,
  ``data.patch_size`` px at the HEALPix pixel scale, or at the training pixel scale for a U-Net
  trained on flat maps, so a flat-trained U-Net serves the full sky) that tile the mask: training draws
  ``model.patches_per_map`` random patches per map and step (:class:`PatchTraining`); test/predict
  run on every patch and re-assemble them (apodised mean) into a HEALPix map. Trained with the
  D4 spin-2 augmentation (``data.augment: true`` in ``experiments/massmapping/unet.yaml``).
* ``ks``: Kaiser–Squires with Gaussian smoothing (standard deviation ``model.smoothing_arcmin``,
  :class:`~cosmobench.tasks.massmapping_baselines.KSSettings`;
  null = chosen on the training split: the value of a grid from 0.5 to 8 pixels with the lowest
  MSE inside the mask). Flat: FFT (:func:`cosmobench.sim.cosmology.ks_inverse`); sphere: healpy
  spin-2 transforms (:func:`cosmobench.sim.healpix.ks_inverse`). A :class:`FittedBaseline`.
* ``wiener``: Wiener filter, per Fourier mode ``kappa = S D* gamma / (S |D|^2 + N)`` (i.e.
  ``S / (S + N)`` times the KS E-mode where ``|D| = 1``; on the sphere ``S f_l^2 / (S f_l^2 + N)``
  on ``gamma_E / f_l``), with the signal spectrum ``S`` estimated on the training convergence maps (flat: 2-D FFT power
  averaged over maps in fine ``|ell|`` bins; sphere: mean ``anafast`` of the masked maps / f_sky)
  and the known white noise ``N = sigma_pix^2 * pixel area``. Diagonal in Fourier/harmonic
  space: the exact Wiener filter for a Gaussian field with uniform noise on a periodic or full
  sky; with masks (zero-filled) and map edges it is the usual approximation (no messenger-field
  iteration). A :class:`FittedBaseline`.

Metrics and their definitions: :mod:`cosmobench.metrics.massmapping` (``nmse`` primary,
``pearson_r``, ``rmse`` and ``r_zero_filled`` (Remy+2023's), ``power_ratio_dev``, ``peak_err_<nu>``,
``peak_count_err``); their protocol is the ``eval`` node (:class:`~cosmobench.metrics.massmapping.MassMappingEval`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cosmobench.errors import InputError
from cosmobench.metrics import massmapping as mm
from cosmobench.nn import build_net
from cosmobench.plots import pyplot, save
from cosmobench.settings import build, setting
from cosmobench.sim import cosmology as cosmo
from cosmobench.task import BaseTask
from cosmobench.tasks.massmapping_baselines import (KSBaseline, WienerBaseline, as_numpy, nside_of,
                                                    pixel_arcmin_of)


@dataclass
class PatchTraining:
    """What massmapping adds to the ``model`` node of its networks."""

    patches_per_map: int = setting(8, "positive int",
                                   help="HEALPix training: random gnomonic patches per map and step")


# --------------------------------------------------------------------------- task


class MassMappingTask(BaseTask):
    """Mass mapping (module docstring). ``data_info`` from :meth:`MassMappingDataModule.info`;
    the metric protocol from the ``eval`` node (:class:`~cosmobench.metrics.massmapping.MassMappingEval`)."""

    extra_predict_suffixes = (".npy",)  # a flat NPY shear map gives an NPY convergence map

    def configure_model(self) -> nn.Module:
        info = self.require_info("sky", "pixel_arcmin", "sigma_pix", "kappa_std", "gamma_std", "patch_size")
        self.sky = info["sky"]
        self.pixel_arcmin = float(info["pixel_arcmin"])
        self.kappa_scale = float(info["kappa_std"])
        self.gamma_scale = float(info["gamma_std"]) or 1.0
        self.sigma_pix = float(info["sigma_pix"])
        self.patch_size = int(info["patch_size"])
        self._tilings: dict[str, object] = {}
        self._ks_kernels: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        if self.model_name == "ks":
            return KSBaseline(self.model_cfg["smoothing_arcmin"], self.pixel_arcmin)
        if self.model_name == "wiener":
            return WienerBaseline(self.sigma_pix, self.pixel_arcmin)
        # a network of kind image_to_image: (gamma1, gamma2, mask, kappa_KS) -> kappa
        self.patches_per_map = self.model_cfg["patches_per_map"]
        return build_net(self.model_name, self.model_cfg, kind="image_to_image", in_channels=4, out_channels=1)

    def protocol(self) -> mm.MassMappingEval:
        """The metric protocol (the ``eval`` node)."""
        return build(mm.MassMappingEval, self.eval_cfg)

    # --- U-Net on flat maps -------------------------------------------------------------
    def _ks_torch(self, gamma: torch.Tensor) -> torch.Tensor:
        """Unsmoothed KS E-mode ``(B, 1, H, W)`` of ``(B, 2, H, W)`` (torch FFT, same operator
        as :func:`cosmobench.sim.cosmology.ks_inverse`)."""
        shape = tuple(gamma.shape[-2:])
        key = (shape, gamma.device)
        if key not in self._ks_kernels:
            c, s = cosmo.ks_kernel(shape)
            norm = c ** 2 + s ** 2
            inv = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)
            self._ks_kernels[key] = (torch.as_tensor(c * inv, dtype=torch.float32, device=gamma.device),
                                     torch.as_tensor(s * inv, dtype=torch.float32, device=gamma.device))
        c, s = self._ks_kernels[key]
        g = gamma.float()
        kh = c * torch.fft.fft2(g[:, 0]) + s * torch.fft.fft2(g[:, 1])
        return torch.fft.ifft2(kh).real[:, None]

    def unet_flat(self, gamma: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Convergence ``(B, 1, H, W)`` from flat shear ``(B, 2, H, W)`` and mask ``(B, 1, H, W)``."""
        g = gamma.float() * mask.float()
        x = torch.cat([g / self.gamma_scale, mask.float(), self._ks_torch(g) / self.gamma_scale], dim=1)
        return self.net(x) * self.kappa_scale

    # --- HEALPix via gnomonic patches ---------------------------------------------------
    def tiling(self, mask: np.ndarray):
        from cosmobench.sim.healpix import GnomonicPatches, pixel_arcmin
        key = hashlib.sha1(np.ascontiguousarray(mask > 0)).hexdigest()
        if key not in self._tilings:
            nside = nside_of(len(mask))
            # a U-Net trained on flat maps sees patches at its training pixel scale; one trained on
            # HEALPix patches at the HEALPix pixel scale
            reso = self.pixel_arcmin if self.sky == "flat" else pixel_arcmin(nside)
            t = GnomonicPatches(nside, mask, self.patch_size, reso)
            if t.n_patches == 0:
                raise InputError("the HEALPix mask has no observed pixel")
            self._tilings = {key: t}  # keep one: masks rarely change within a run
        return self._tilings[key]

    def _patches(self, gamma: np.ndarray, mask: np.ndarray, kappa: np.ndarray | None, tiling, select=None):
        """Project one HEALPix map's shear/mask(/kappa) onto (selected) patches -> tensors."""
        g1, g2 = tiling.project_shear(gamma[0], gamma[1])
        m = (tiling.project_scalar(mask[0]) > 0.5).astype(np.float64)
        sel = slice(None) if select is None else select
        out = [torch.as_tensor(np.stack([g1[sel], g2[sel]], 1), dtype=torch.float32),
               torch.as_tensor(m[sel][:, None], dtype=torch.float32)]
        if kappa is not None:
            out.append(torch.as_tensor(tiling.project_scalar(kappa[0])[sel][:, None], dtype=torch.float32))
        return out

    def _patch_batch(self, batch, random: bool):
        g, m, k = as_numpy(batch["gamma"]), as_numpy(batch["mask"]), as_numpy(batch["kappa"])
        gs, ms, ks = [], [], []
        for i in range(len(g)):
            t = self.tiling(m[i, 0])
            n = min(self.patches_per_map, t.n_patches)
            if random:
                rng = np.random.default_rng([int(batch["idx"][i]), int(self.current_epoch), int(self.global_step)])
                sel = rng.choice(t.n_patches, n, replace=False)
            else:
                sel = np.linspace(0, t.n_patches - 1, n).round().astype(int)
            a, b, c = self._patches(g[i], m[i], k[i], t, sel)
            gs.append(a), ms.append(b), ks.append(c)
        dev = batch["gamma"].device
        return torch.cat(gs).to(dev), torch.cat(ms).to(dev), torch.cat(ks).to(dev)

    def unet_healpix(self, gamma: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """U-Net on all patches of each HEALPix map, re-assembled: ``(B, 1, npix)``."""
        g, m = as_numpy(gamma), as_numpy(mask)
        out = []
        for i in range(len(g)):
            t = self.tiling(m[i, 0])
            pg, pm = self._patches(g[i], m[i], None, t)
            preds = [self.unet_flat(pg[j:j + 32].to(gamma.device), pm[j:j + 32].to(gamma.device))
                     for j in range(0, len(pg), 32)]
            patches = torch.cat(preds)[:, 0].detach().cpu().double().numpy()
            out.append(t.assemble(patches)[None] * (m[i] > 0))
        return torch.as_tensor(np.stack(out), dtype=torch.float32, device=gamma.device)

    # --- common -------------------------------------------------------------------------
    def reconstruct(self, batch) -> torch.Tensor:
        gamma, mask = batch["gamma"], batch["mask"]
        if self.is_baseline:
            return self.net(gamma, mask, self._pixel_scale(gamma), batch.get("noise"))
        return self.unet_flat(gamma, mask) if gamma.ndim == 4 else self.unet_healpix(gamma, mask)

    def _pixel_scale(self, gamma: torch.Tensor) -> float:
        return self.pixel_arcmin if gamma.ndim == 4 else pixel_arcmin_of(gamma.shape[-1])

    @staticmethod
    def _masked_mse(pred, true, mask) -> torch.Tensor:
        w = mask.float()
        return ((pred - true.float()) ** 2 * w).sum() / w.sum().clamp_min(1.0)

    def loss(self, batch):
        if self.is_baseline:
            return self._masked_mse(self.reconstruct(batch), batch["kappa"], batch["mask"]) / self.kappa_scale ** 2
        if batch["gamma"].ndim == 4:
            pred, true, mask = self.unet_flat(batch["gamma"], batch["mask"]), batch["kappa"], batch["mask"]
        else:
            g, mask, true = self._patch_batch(batch, random=self.training)
            pred = self.unet_flat(g, mask)
        return self._masked_mse(pred, true, mask) / self.kappa_scale ** 2

    def training_step(self, batch, batch_idx):
        if self.is_baseline and not self.net.fitted:  # keep only what the fit needs
            self._fit_buffer.append({k: batch[k].detach() for k in ("gamma", "kappa", "mask", "idx")})
            return None
        return super().training_step(batch, batch_idx)

    def test_outputs(self, batch):
        return {"kappa_hat": self.reconstruct(batch), "kappa": batch["kappa"].float(), "mask": batch["mask"].float()}

    def predict_outputs(self, batch):
        with torch.no_grad():
            return {"kappa": self.reconstruct(batch).cpu(), "mask": batch["mask"].cpu()}

    def write_predictions(self, loader, output: Path) -> list[Path]:
        """Write the convergence maps of a ``predict`` input in its own format (by the
        extension of ``output``; atomic):

        * HEALPix input: ``.fits`` HEALPix map(s) (column ``KAPPA``; unobserved pixels
          ``healpy.UNSEEN``) or a table (``.csv``/``.ecsv``/``.parquet``/``.h5``: ``pixel``, ``kappa``
          per observed pixel);
        * flat input: ``.fits`` image (``(N, N)`` for a single input map, else ``(M, N, N)``),
          ``.npz`` (array ``kappa``, same shapes), ``.npy`` (the same array), or a table (``map``, ``row``, ``col``, ``kappa`` per
          observed pixel). The input's ``data.spatial_order`` is kept.
        """
        from cosmobench.io import atomic_path, write_table

        meta = getattr(loader.dataset, "meta", {"sky": "flat", "single": False, "spatial_order": "yx"})
        parts = [self.predict_outputs(b) for b in loader]
        if not parts:
            raise InputError("the predict input holds no maps")
        kappa = torch.cat([p["kappa"] for p in parts])[:, 0].numpy().astype(np.float32)
        mask = torch.cat([p["mask"] for p in parts])[:, 0].numpy() > 0
        out = Path(output)
        suffix = out.suffix.lower()
        if meta["sky"] == "flat" and meta["spatial_order"] == "xy":
            kappa, mask = np.swapaxes(kappa, -1, -2), np.swapaxes(mask, -1, -2)
        healpix_map = suffix in (".fits", ".fit") and meta["sky"] == "healpix"
        k = kappa[0] if meta["single"] else kappa
        if suffix == ".npz":
            return [write_table({"kappa": k}, out)]
        if not healpix_map and suffix not in (".fits", ".fit", ".npy"):  # a table of the observed pixels
            idx = np.nonzero(mask)
            cols = ({"pixel": idx[1]} if meta["sky"] == "healpix" else {"map": idx[0], "row": idx[1], "col": idx[2]})
            if meta["sky"] == "healpix" and len(kappa) > 1:
                cols = {"map": idx[0], **cols}
            cols["kappa"] = kappa[idx]
            return [write_table(cols, out)]
        with atomic_path(out) as tmp:
            if healpix_map:
                import healpy as hp
                m = np.where(mask, kappa, hp.UNSEEN)
                names = ["KAPPA"] if len(m) == 1 else [f"KAPPA{i}" for i in range(len(m))]
                hp.write_map(str(tmp), m[0] if len(m) == 1 else m, overwrite=True, dtype=np.float32,
                             column_names=names)
            elif suffix == ".npy":
                with open(tmp, "wb") as fh:
                    np.save(fh, k)
            else:
                from astropy.io import fits
                fits.PrimaryHDU(k).writeto(tmp, overwrite=True)
        return [out]

    # --- metrics ------------------------------------------------------------------------
    @staticmethod
    def _smooth(maps: np.ndarray, flat: bool, pix: float, smoothing_pix: float) -> np.ndarray:
        s = smoothing_pix * pix
        if flat:
            return cosmo.gaussian_smooth(maps, s, pix)
        from cosmobench.sim.healpix import smooth
        return np.stack([smooth(m, s) for m in maps])

    @staticmethod
    def spectra(maps: np.ndarray, mask: np.ndarray, flat: bool, pix: float, n_bins: int):
        """``(ell, C (n_maps, n_bins))`` of masked maps (flat estimator or ``anafast``)."""
        if flat:
            bins = cosmo.default_ell_bins(maps.shape[-2:], pix, n_bins)
            ell, cl, _ = cosmo.flat_power_spectrum(maps * mask, pix, bins)
            return ell, cl
        import healpy as hp
        nside = nside_of(maps.shape[-1])
        lmax = 3 * nside - 1
        edges = np.unique(np.geomspace(8, lmax + 1, n_bins + 1).astype(int))
        raw = np.array([hp.anafast(m * w, lmax=lmax) for m, w in zip(maps, mask)])
        ell = np.arange(lmax + 1)
        cl = np.stack([raw[:, lo:hi].mean(1) for lo, hi in zip(edges[:-1], edges[1:])], 1)
        return np.array([ell[lo:hi].mean() for lo, hi in zip(edges[:-1], edges[1:])]), cl

    def compute_metrics(self, out):
        ev = self.protocol()
        pred, true, mask = out["kappa_hat"][:, 0], out["kappa"][:, 0], out["mask"][:, 0]
        flat = pred.ndim == 3
        pix = self.pixel_arcmin if flat else pixel_arcmin_of(pred.shape[-1])
        metrics = {"nmse": mm.nmse(pred, true, mask), "pearson_r": mm.pearson_r(pred, true, mask),
                   "rmse": mm.rmse_mean_subtracted(pred, true, mask), "r_zero_filled": mm.r_zero_filled(pred, true, mask)}
        ell, cl_hat = self.spectra(pred, mask, flat, pix, ev.power_bins)
        _, cl_true = self.spectra(true, mask, flat, pix, ev.power_bins)
        ratio, dev = mm.power_ratio(cl_hat, cl_true)
        metrics["power_ratio_dev"] = dev
        sp = self._smooth(pred, flat, pix, ev.peak_smoothing_pix)
        st = self._smooth(true, flat, pix, ev.peak_smoothing_pix)
        if flat:
            pk_p, pk_t = mm.flat_peaks(sp, mask), mm.flat_peaks(st, mask)
        else:
            pk_p = np.stack([mm.healpix_peaks(a, w) for a, w in zip(sp, mask)])
            pk_t = np.stack([mm.healpix_peaks(a, w) for a, w in zip(st, mask)])
        sigma = (mm.noise_sigma_smoothed(self.sigma_pix, ev.peak_smoothing_pix) if self.sigma_pix > 0
                 else float(st[mask > 0].std()))
        n_p = mm.peak_counts(sp, pk_p, ev.peak_thresholds, sigma)
        n_t = mm.peak_counts(st, pk_t, ev.peak_thresholds, sigma)
        metrics.update(mm.peak_count_errors(n_p, n_t, ev.peak_thresholds))
        self._plot_data = {"ell": ell, "cl_hat": cl_hat.mean(0), "cl_true": cl_true.mean(0), "ratio": ratio,
                           "nu_hat": sp[pk_p] / sigma, "nu_true": st[pk_t] / sigma, "flat": flat}
        return metrics

    # --- plots --------------------------------------------------------------------------
    def make_plots(self, out, plot_dir: Path) -> list[Path]:
        plt = pyplot()
        plot_dir = Path(plot_dir)
        paths: list[Path] = []
        pred, true, mask = out["kappa_hat"][:, 0], out["kappa"][:, 0], out["mask"][:, 0]
        pd = getattr(self, "_plot_data", None)
        if pd is None:
            self.compute_metrics(out)
            pd = self._plot_data
        n = min(3, len(pred))
        lim = float(np.percentile(np.abs(true[:n][mask[:n] > 0]), 99.5)) if n else 1.0
        if pd["flat"]:
            fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
            for i in range(n):
                for j, (img, title) in enumerate(((true[i], "true kappa"), (pred[i], f"{self.model_name} kappa"),
                                                  (pred[i] - true[i], "residual"))):
                    im = axes[i, j].imshow(np.where(mask[i] > 0, img, np.nan), origin="lower", cmap="RdBu_r",
                                           vmin=-lim, vmax=lim)
                    axes[i, j].set_title(title, fontsize=9)
                    axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
                fig.colorbar(im, ax=axes[i].tolist(), shrink=0.8)
            paths.append(save(fig, plot_dir / "maps.png", dpi=90))
        else:
            import healpy as hp
            fig = plt.figure(figsize=(12, 3.2 * n))
            for i in range(n):
                for j, (img, title) in enumerate(((true[i], "true kappa"), (pred[i], f"{self.model_name} kappa"),
                                                  (pred[i] - true[i], "residual"))):
                    hp.mollview(np.where(mask[i] > 0, img, hp.UNSEEN), fig=fig.number, sub=(n, 3, 3 * i + j + 1),
                                title=title, min=-lim, max=lim, cmap="RdBu_r", cbar=True, notext=True)
            paths.append(save(fig, plot_dir / "maps_mollweide.png", dpi=80))
        fig, (a0, a1) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        a0.loglog(pd["ell"], pd["cl_true"], "k-", label="truth")
        a0.loglog(pd["ell"], pd["cl_hat"], "C0o-", label=self.model_name)
        a0.set(ylabel="C_ell (masked maps)", title="convergence power spectra")
        a0.legend()
        a1.semilogx(pd["ell"], pd["ratio"], "C0o-")
        a1.axhline(1, color="k", lw=1)
        a1.set(xlabel="ell", ylabel="ratio")
        paths.append(save(fig, plot_dir / "power_spectra.png"))
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        hi = max(6.0, float(np.percentile(pd["nu_true"], 99.5)) if len(pd["nu_true"]) else 6.0)
        bins = np.linspace(-2, hi, 33)
        ax.hist(pd["nu_true"], bins=bins, histtype="step", color="k", label="truth")
        ax.hist(pd["nu_hat"], bins=bins, histtype="step", color="C0", label=self.model_name)
        for t in self.protocol().peak_thresholds:
            ax.axvline(t, color="gray", ls=":", lw=1)
        ax.set(yscale="log", xlabel="peak S/N", ylabel="peaks (test set)", title="peak counts")
        ax.legend()
        paths.append(save(fig, plot_dir / "peak_histogram.png"))
        return paths
