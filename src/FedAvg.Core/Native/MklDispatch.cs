using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace FedAvg.Core.Native;

/// <summary>
/// Lets the MKL inside libtorch pick its GEMM kernels by the instructions the CPU has rather than by its vendor.
/// </summary>
/// <remarks>
/// MKL asks one question before choosing its code path, <c>mkl_serv_intel_cpu_true</c> ("is the vendor string
/// GenuineIntel?"), and on AMD it answers no and falls back to generic AVX2 kernels (<c>*_def_*_zen</c>), whatever
/// the CPU supports. Measured here on an AVX-512 AMD EPYC, same sitting, alternated: seed001-2nn B=64 trained at
/// 96–98k samples/s with the CPU-feature path against 61k without (1.6×), seed002-cnn 1.03×
/// (docs/benchmark-notes.md). MKL caches that answer in a word it sets on first use (negative until then). Writing 1
/// there before the first GEMM is what the widely used LD_PRELOAD shim for MKL on AMD does, without needing a shim;
/// the kernels MKL then picks are still chosen by CPUID feature bits.
///
/// Applied only to AMD processors with AVX2 and FMA, only when the function has the exact shape read from libtorch
/// 2.10's MKL (load the cached word, test its sign, return) and the word lies in libtorch's own writable data, and
/// only before MKL has answered. Anything else leaves MKL alone and says why in <see cref="Status"/>.
/// FEDAVG_MKL_DISPATCH=vendor keeps MKL's own choice.
/// </remarks>
public static unsafe class MklDispatch
{
    static readonly object Gate = new();
    static bool applied;

    /// <summary>True when MKL was set to choose its kernels by CPU features in this process.</summary>
    public static bool ByCpuFeatures { get; private set; }

    /// <summary>What was done, or why nothing was (for the logs and the benchmark records).</summary>
    public static string Status { get; private set; } = "not applied yet";

    /// <summary>Applies the dispatch choice once per process (through <see cref="NativeTuning.Apply"/>), before the
    /// first matrix product. With <paramref name="byCpuFeatures"/> false, MKL keeps its own choice.</summary>
    public static void Apply(bool byCpuFeatures)
    {
        lock (Gate)
        {
            if (applied) return;
            applied = true;
            Status = byCpuFeatures ? Decide() : "MKL's own vendor-based choice (FEDAVG_MKL_DISPATCH=vendor)";
        }
    }

    static string Decide()
    {
        if (!OperatingSystem.IsLinux() || !X86Base.IsSupported) return "left alone: not x86-64 Linux";
        if (Vendor() != "AuthenticAMD") return $"left alone: CPU vendor {Vendor()}";
        if (!Avx2.IsSupported || !Fma.IsSupported) return "left alone: CPU lacks AVX2/FMA";

        _ = TorchSharp.torch.get_num_threads(); // loads libtorch
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var libtorch)
            || !NativeLibrary.TryGetExport(libtorch, "mkl_serv_intel_cpu_true", out var function))
            return "left alone: libtorch has no MKL";

        // 8B 05 rel32 | 85 C0 | 78 01 | C3: mov eax,[rip+rel32]; test eax,eax; js compute; ret
        var code = (byte*)function;
        if (code[0] != 0x8B || code[1] != 0x05 || code[6] != 0x85 || code[7] != 0xC0
            || code[8] != 0x78 || code[9] != 0x01 || code[10] != 0xC3)
            return "left alone: unknown MKL build (mkl_serv_intel_cpu_true has another shape)";
        var cached = (int*)(code + 6 + *(int*)(code + 2));
        if (!InWritableMappingOf((nint)cached, "libtorch_cpu.so"))
            return "left alone: MKL's cached answer is not in libtorch's writable data";
        if (*cached >= 0)
            return $"left alone: MKL had already answered ({*cached}) before it could be set";

        Interlocked.Exchange(ref *cached, 1);
        if (((delegate* unmanaged<int>)function)() != 1)
            return "left alone: MKL did not take the setting";
        ByCpuFeatures = true;
        return "MKL kernels chosen by CPU features (AMD)";
    }

    static string Vendor()
    {
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<int> words = [ebx, edx, ecx];
        return System.Text.Encoding.ASCII.GetString(MemoryMarshal.AsBytes(words));
    }

    static bool InWritableMappingOf(nint address, string library) =>
        ProcessMaps.Read().Any(m => m.Permissions.StartsWith("rw", StringComparison.Ordinal)
                                    && Path.GetFileName(m.Path) == library && m.Contains(address, sizeof(int)));
}
