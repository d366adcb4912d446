import CompressNIO
import NIOCore

/// COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951) on both directions of the connection, below the protocol
/// handler. Every write is sync-flushed so that each response reaches the client at once.
public final class DeflateEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer
    private let compressor: ZlibCompressor

    public init() throws {
        compressor = try ZlibCompressor(algorithm: .deflate)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var input = unwrapOutboundIn(data)
        var output = context.channel.allocator.buffer(capacity: compressor.maxSize(from: input) + 64)
        do {
            try compressor.deflate(from: &input, to: &output, flush: .sync)
            context.write(wrapOutboundOut(output), promise: promise)
        } catch {
            promise?.fail(error)
            context.fireErrorCaught(error)
        }
    }
}

/// The inflating half. A "zip bomb" is refused: one read may expand to at most `maxExpansion` octets.
public final class DeflateDecoder: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public static let maxExpansion = 16 << 20
    private let decompressor: ZlibDecompressor

    public init() throws {
        decompressor = try ZlibDecompressor(algorithm: .deflate)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        do {
            for chunk in try inflate(&input, allocator: context.channel.allocator) {
                context.fireChannelRead(wrapInboundOut(chunk))
            }
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
    }

    /// Inflates everything readable in `input` (also used for bytes that arrived before the handler was added).
    public func inflate(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws -> [ByteBuffer] {
        var chunks: [ByteBuffer] = []
        var total = 0
        while input.readableBytes > 0 {
            var out = allocator.buffer(capacity: 65536)
            do {
                try decompressor.inflate(from: &input, to: &out)
            } catch let e as CompressNIOError where e == .bufferOverflow {
                // More output than the buffer holds: keep going with a fresh one.
            } catch let e as CompressNIOError where e == .inputBufferOverflow {
                if out.readableBytes > 0 { chunks.append(out) }
                break
            }
            total += out.readableBytes
            guard total <= Self.maxExpansion else { throw CompressNIOError.bufferOverflow }
            if out.readableBytes > 0 { chunks.append(out) } else if input.readableBytes > 0 && out.writableBytes > 0 { break }
        }
        return chunks
    }
}
